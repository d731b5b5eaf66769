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
	addr, stop := exampleServer() // "127.0.0.1:4730" in a real deployment
	defer stop()
	c, err := client.New([]string{addr})
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
	fmt.Println("queued", h.ID, "on", h.Server == addr)
	// Output: queued H:example:1 on true
}

// Run a foreground job and stream what the worker sends.
func ExampleClient_Submit() {
	addr, stop := exampleServer()
	defer stop()
	c, err := client.New([]string{addr})
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
			fmt.Printf("progress %d/%d\n", ev.Numerator, ev.Denominator)
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
	// Output:
	// line
	// progress 1/2
	// line
	// progress 2/2
	// result: report 2026-11 done
}

// Wait for a foreground job's result in one call.
func ExampleJob_Wait() {
	addr, stop := exampleServer()
	defer stop()
	c, err := client.New([]string{addr})
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
	// Output: olleh
}

// Look up a background job's progress on the server that created it.
func ExampleClient_Status() {
	addr, stop := exampleServer() // a fleet: "10.0.0.1:4730", "10.0.0.2:4730"
	defer stop()
	c, err := client.New([]string{addr})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	// No worker serves "mail" here: the job waits in the queue.
	h, err := c.SubmitBackground(ctx, "mail", []byte("to=a@example.com"))
	if err != nil {
		log.Fatal(err)
	}
	st, err := c.Status(ctx, h)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("known=%v running=%v %d/%d\n", st.Known, st.Running, st.Numerator, st.Denominator)
	// Output: known=true running=false 0/0
}

// Submit many jobs pipelined: one round trip per batch, not per job.
func ExampleClient_SubmitBackgroundBatch() {
	addr, stop := exampleServer()
	defer stop()
	c, err := client.New([]string{addr})
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
	// Output:
	// 0 H:example:1
	// 1 H:example:2
	// 2 H:example:3
}

// Read a server's queue the way gearadmin --status does.
func ExampleAdmin_Status() {
	addr, stop := exampleServer()
	defer stop()
	c, err := client.New([]string{addr})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if _, err := c.SubmitBackground(context.Background(), "thumb", []byte("a.jpg")); err != nil {
		log.Fatal(err)
	}
	st, err := c.Admin("").Status(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	for _, f := range st {
		if f.Total > 0 { // the functions with work
			fmt.Printf("%s: %d queued, %d running, %d workers\n", f.Function, f.Total-f.Running, f.Running, f.Workers)
		}
	}
	// Output: thumb: 1 queued, 0 running, 0 workers
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
