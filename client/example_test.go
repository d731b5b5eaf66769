package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/gworkerd/gworkerd/client"
)

// Submit a background job at high priority with a unique id, as the
// photo-resizing application does.
func ExampleClient_SubmitBackground() {
	c, err := client.New([]string{"127.0.0.1:4730"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h, err := c.SubmitBackground(ctx, "resize", []byte(`{"photo":"cat.jpg"}`),
		client.Priority(client.High), client.Unique("resize:cat.jpg"))
	if err != nil {
		log.Fatal(err) // names every server that could not take the job
	}
	fmt.Println("queued", h.ID, "on", h.Server)
}

// Run a foreground job and stream what the worker sends.
func ExampleClient_Submit() {
	c, err := client.New([]string{"127.0.0.1:4730"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	job, err := c.Submit(ctx, "report", []byte("2026-11"))
	if err != nil {
		log.Fatal(err)
	}
	for ev := range job.Events(ctx) {
		switch ev.Kind {
		case client.EventData:
			os.Stdout.Write(ev.Data)
		case client.EventStatus:
			fmt.Fprintf(os.Stderr, "progress %d/%d\n", ev.Numerator, ev.Denominator)
		case client.EventWarning:
			fmt.Fprintf(os.Stderr, "warning: %s\n", ev.Data)
		}
	}
	res, err := job.Wait(ctx)
	var ex *client.ExceptionError
	switch {
	case errors.As(err, &ex):
		log.Fatalf("worker raised: %s", ex.Data)
	case errors.Is(err, client.ErrJobFailed):
		log.Fatal("job failed")
	case err != nil:
		log.Fatal(err)
	}
	fmt.Printf("result: %s\n", res.Data)
}

// Wait for a foreground job's result in one call.
func ExampleJob_Wait() {
	c, err := client.New([]string{"127.0.0.1:4730"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	job, err := c.Submit(ctx, "reverse", []byte("hello"))
	if err != nil {
		log.Fatal(err)
	}
	res, err := job.Wait(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", res.Output())
}

// Look up a background job's progress on the server that created it.
func ExampleClient_Status() {
	c, err := client.New([]string{"10.0.0.1:4730", "10.0.0.2:4730"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	h, err := c.SubmitBackground(ctx, "mail", []byte("to=a@example.com"))
	if err != nil {
		log.Fatal(err)
	}
	st, err := c.Status(ctx, h)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("known=%v running=%v %d/%d\n", st.Known, st.Running, st.Numerator, st.Denominator)
}

// Submit many jobs pipelined: one round trip per batch, not per job.
func ExampleClient_SubmitBackgroundBatch() {
	c, err := client.New([]string{"127.0.0.1:4730"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	reqs := []client.Request{
		{Function: "thumb", Payload: []byte("a.jpg")},
		{Function: "thumb", Payload: []byte("b.jpg"), Options: []client.SubmitOption{client.Priority(client.Low)}},
		{Function: "thumb", Payload: []byte("c.jpg"), Options: []client.SubmitOption{client.RunAt(time.Now().Add(time.Hour))}},
	}
	for i, r := range c.SubmitBackgroundBatch(context.Background(), reqs) {
		if r.Err != nil {
			fmt.Println(i, "failed:", r.Err)
			continue
		}
		fmt.Println(i, r.Handle.ID)
	}
}

// Read a server's queue the way gearadmin --status does.
func ExampleAdmin_Status() {
	c, err := client.New([]string{"127.0.0.1:4730"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	st, err := c.Admin("").Status(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	for _, f := range st {
		fmt.Printf("%-20s %5d queued %5d running %3d workers\n", f.Function, f.Total-f.Running, f.Running, f.Workers)
	}
}

// Jobs with the same unique id go to the same server of a fleet, so that
// they coalesce; the choice does not depend on the order of the list.
func ExampleClient_ServerFor() {
	a, _ := client.New([]string{"gear1:4730", "gear2:4730", "gear3:4730"})
	b, _ := client.New([]string{"gear3:4730", "gear1:4730", "gear2:4730"})
	defer a.Close()
	defer b.Close()
	fmt.Println(a.ServerFor("user:42") == b.ServerFor("user:42"))
	// Output: true
}
