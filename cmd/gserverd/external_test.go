package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	goredis "github.com/redis/go-redis/v9"

	"github.com/gworkerd/gworkerd/protocol"
	"github.com/gworkerd/gworkerd/server/store/storetest"
)

// These tests run the built gserverd against the external stores of
// issue 5 (-q postgres, -q mysql, -q redis) on their standard ports: a
// queue written the way gearmand's plugins write it is replayed and
// worked off, and while the database is unreachable (a proxy cut in
// between) background submits answer QUEUE_ERROR, until it is back.

// gearmandJob is one job as gearmand's queue plugins store it.
type gearmandJob struct {
	fn, unique string
	prio       int // gearmand's values: 0 high, 1 normal, 2 low
	data       string
	when       int64 // when_to_run; 0 = now
}

// externalQueue is one test's own queue (a table, or a key prefix) in an
// external store; it is removed when the test ends.
type externalQueue interface {
	// flags are gserverd's flags for this queue, reaching the database
	// at addr (host:port).
	flags(addr string) []string
	// writeGearmand stores jobs with the statements gearmand's plugin uses.
	writeGearmand(t *testing.T, jobs []gearmandJob)
	// count returns the number of jobs the queue holds.
	count(t *testing.T) int
	// dump lists the stored jobs, for failure messages.
	dump(t *testing.T) string
}

// externalBackend is one external store gserverd supports.
type externalBackend struct {
	name    string
	service string // for storetest.RequireTCP
	addr    string
	// jobs are written as gearmand writes them before gserverd starts.
	// Those with a future when are not runnable and stay stored.
	jobs     []gearmandJob
	newQueue func(t *testing.T) externalQueue
}

func externalBackends() []externalBackend {
	future := time.Now().Add(time.Hour).Unix()
	// gearmand's SQL plugins keep priority and when_to_run, and its
	// tables allow an empty unique_key (gearmand stores the unique as
	// given; a raw SUBMIT_JOB_BG may leave it empty).
	sqlJobs := []gearmandJob{
		{fn: "resize", unique: "u1-named", prio: 0, data: "img\x00data"},
		{fn: "resize", unique: "", prio: 1, data: "no unique"},
		{fn: "mail", unique: "m1", prio: 2, data: "low \xff bytes"},
		{fn: "mail", unique: "later", prio: 1, data: "epoch", when: future},
	}
	// gearmand's redis plugin keeps only PREFIX-FUNCTION-UNIQUE = payload:
	// every job comes back NORMAL, and it refuses epoch jobs.
	redisJobs := []gearmandJob{
		{fn: "resize", unique: "u1-named", prio: 1, data: "img\x00data"},
		{fn: "resize", unique: "", prio: 1, data: "no unique"},
		{fn: "mail", unique: "m1", prio: 1, data: "low \xff bytes"},
	}
	return []externalBackend{
		{name: "postgres", service: "PostgreSQL", addr: "127.0.0.1:5432", jobs: sqlJobs, newQueue: newPGQueue},
		{name: "mysql", service: "MariaDB/MySQL", addr: "127.0.0.1:3306", jobs: sqlJobs, newQueue: newMySQLQueue},
		{name: "redis", service: "Redis", addr: "127.0.0.1:6379", jobs: redisJobs, newQueue: newRedisQueue},
	}
}

// testName returns a fresh name for a table or key prefix: letters,
// digits and '_' only (no '-', which gearmand's redis keys split on).
func testName(t *testing.T) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "gserverd_e2e_" + hex.EncodeToString(b)
}

// dbTimeout bounds each statement the test sends to a database.
const dbTimeout = 10 * time.Second

// --- PostgreSQL ---

type pgQueue struct {
	table string
	c     *pgx.Conn // to the real address; used by the test's goroutine only
}

const pgAddr = "127.0.0.1:5432"

// pgConninfo reaches database test at hostport as the store tests do;
// GWORKERD_TEST_PG_CONNINFO overrides it for the real address.
func pgConninfo(hostport string) string {
	if c := os.Getenv("GWORKERD_TEST_PG_CONNINFO"); c != "" && hostport == pgAddr {
		return c
	}
	host, port, _ := net.SplitHostPort(hostport)
	return fmt.Sprintf("host=%s port=%s user=postgres dbname=test sslmode=disable connect_timeout=5", host, port)
}

func newPGQueue(t *testing.T) externalQueue {
	ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
	defer cancel()
	c, err := pgx.Connect(ctx, pgConninfo(pgAddr))
	if err != nil {
		t.Fatalf("connect to PostgreSQL: %v", err)
	}
	q := &pgQueue{table: testName(t), c: c}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
		defer cancel()
		if _, err := c.Exec(ctx, "DROP TABLE IF EXISTS "+q.table+", "+q.table+"_members"); err != nil {
			t.Errorf("drop table %s: %v", q.table, err)
		}
		_ = c.Close(ctx)
	})
	return q
}

// flags name the queue; every gserverd of a test is the same fleet member
// (a restart of one server: it replays what it stored at once), where
// the default member id would differ with each -p 0 port.
func (q *pgQueue) flags(addr string) []string {
	return []string{"-q", "postgres", "--libpq-conninfo", pgConninfo(addr), "--libpq-table", q.table, "--member-id", q.table}
}

// writeGearmand creates the table as gearmand 1.1's libpq plugin does and
// inserts with its INSERT (libpq PQexecParams: text parameters, data as
// binary).
func (q *pgQueue) writeGearmand(t *testing.T, jobs []gearmandJob) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
	defer cancel()
	if _, err := q.c.Exec(ctx, "CREATE TABLE "+q.table+" (unique_key VARCHAR(64), function_name VARCHAR(255), priority INTEGER, data BYTEA, when_to_run INTEGER, UNIQUE (unique_key, function_name))"); err != nil {
		t.Fatalf("gearmand's CREATE TABLE: %v", err)
	}
	insert := "INSERT INTO " + q.table + " (priority, unique_key, function_name, data, when_to_run) VALUES($1,$2,$3,$4::BYTEA,$5)"
	for _, j := range jobs {
		if _, err := q.c.Exec(ctx, insert, pgx.QueryExecModeExec,
			strconv.Itoa(j.prio), j.unique, j.fn, []byte(j.data), strconv.FormatInt(j.when, 10)); err != nil {
			t.Fatalf("gearmand's INSERT of %+v: %v", j, err)
		}
	}
}

func (q *pgQueue) count(t *testing.T) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
	defer cancel()
	var n int
	if err := q.c.QueryRow(ctx, "SELECT count(*) FROM "+q.table).Scan(&n); err != nil {
		t.Fatalf("count rows of %s: %v", q.table, err)
	}
	return n
}

func (q *pgQueue) dump(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
	defer cancel()
	rows, err := q.c.Query(ctx, "SELECT function_name, unique_key FROM "+q.table+" ORDER BY 1, 2")
	if err != nil {
		return err.Error()
	}
	return dumpRows(pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var fn, unique string
		err := r.Scan(&fn, &unique)
		return fn + "/" + strconv.Quote(unique), err
	}))
}

// dumpRows formats what dump collected.
func dumpRows(rows []string, err error) string {
	if err != nil {
		return err.Error()
	}
	return "[" + strings.Join(rows, " ") + "]"
}

// --- MariaDB/MySQL ---

type mysqlQueue struct {
	table string
	db    *sql.DB // to the real address
}

const mysqlAddr = "127.0.0.1:3306"

func newMySQLQueue(t *testing.T) externalQueue {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr, cfg.DBName = "root", "tcp", mysqlAddr, "test"
	cfg.Timeout = 5 * time.Second
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	q := &mysqlQueue{table: testName(t), db: sql.OpenDB(connector)}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
		defer cancel()
		if _, err := q.db.ExecContext(ctx, "DROP TABLE IF EXISTS "+q.table+", "+q.table+"_members"); err != nil {
			t.Errorf("drop table %s: %v", q.table, err)
		}
		_ = q.db.Close()
	})
	return q
}

func (q *mysqlQueue) flags(addr string) []string {
	host, port, _ := net.SplitHostPort(addr)
	return []string{"-q", "mysql", "--mysql-host", host, "--mysql-port", port, "--mysql-user", "root",
		"--mysql-db", "test", "--mysql-table", q.table}
}

// writeGearmand creates the table as gearmand 1.1's MySQL plugin does and
// inserts with its prepared INSERT.
func (q *mysqlQueue) writeGearmand(t *testing.T, jobs []gearmandJob) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
	defer cancel()
	if _, err := q.db.ExecContext(ctx, "CREATE TABLE "+q.table+"(unique_key VARCHAR(64),function_name VARCHAR(255),priority INT,data LONGBLOB,when_to_run INT,unique key (unique_key, function_name))"); err != nil {
		t.Fatalf("gearmand's CREATE TABLE: %v", err)
	}
	ins, err := q.db.PrepareContext(ctx, "INSERT INTO "+q.table+" (unique_key, function_name, priority, data, when_to_run) VALUES(?, ?, ?, ?, ?)")
	if err != nil {
		t.Fatal(err)
	}
	defer ins.Close()
	for _, j := range jobs {
		if _, err := ins.ExecContext(ctx, j.unique, j.fn, j.prio, []byte(j.data), j.when); err != nil {
			t.Fatalf("gearmand's INSERT of %+v: %v", j, err)
		}
	}
}

func (q *mysqlQueue) count(t *testing.T) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
	defer cancel()
	var n int
	if err := q.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+q.table).Scan(&n); err != nil {
		t.Fatalf("count rows of %s: %v", q.table, err)
	}
	return n
}

func (q *mysqlQueue) dump(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
	defer cancel()
	rows, err := q.db.QueryContext(ctx, "SELECT function_name, unique_key FROM "+q.table+" ORDER BY 1, 2")
	if err != nil {
		return err.Error()
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var fn, unique string
		if err := rows.Scan(&fn, &unique); err != nil {
			return err.Error()
		}
		out = append(out, fn+"/"+strconv.Quote(unique))
	}
	return dumpRows(out, rows.Err())
}

// --- Redis ---

type redisQueue struct {
	prefix string
	c      *goredis.Client // to the real address
}

const redisAddr = "127.0.0.1:6379"

func newRedisQueue(t *testing.T) externalQueue {
	q := &redisQueue{prefix: testName(t), c: goredis.NewClient(&goredis.Options{Addr: redisAddr, Protocol: 2})}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
		defer cancel()
		keys, err := q.keys(ctx, q.prefix+"*") // the jobs and gserverd's PREFIX:seq
		if err == nil && len(keys) > 0 {
			err = q.c.Del(ctx, keys...).Err()
		}
		if err != nil {
			t.Errorf("delete keys %s*: %v", q.prefix, err)
		}
		_ = q.c.Close()
	})
	return q
}

func (q *redisQueue) flags(addr string) []string {
	host, port, _ := net.SplitHostPort(addr)
	return []string{"-q", "redis", "--redis-server", host, "--redis-port", port, "--redis-prefix", q.prefix}
}

// writeGearmand sets the keys as gearmand's redis plugin does:
// SET PREFIX-FUNCTION-UNIQUE payload.
func (q *redisQueue) writeGearmand(t *testing.T, jobs []gearmandJob) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
	defer cancel()
	for _, j := range jobs {
		if j.when != 0 || j.prio != 1 {
			t.Fatalf("gearmand's redis plugin stores neither priority nor epoch: %+v", j)
		}
		if err := q.c.Set(ctx, q.prefix+"-"+j.fn+"-"+j.unique, j.data, 0).Err(); err != nil {
			t.Fatalf("gearmand's SET of %+v: %v", j, err)
		}
	}
}

// keys returns the keys matching pattern, by SCAN.
func (q *redisQueue) keys(ctx context.Context, pattern string) ([]string, error) {
	var keys []string
	iter := q.c.Scan(ctx, 0, pattern, 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("scan %s: %w", pattern, err)
	}
	return keys, nil
}

// count counts the job keys (PREFIX-...), not gserverd's PREFIX:seq.
func (q *redisQueue) count(t *testing.T) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
	defer cancel()
	keys, err := q.keys(ctx, q.prefix+"-*")
	if err != nil {
		t.Fatal(err)
	}
	return len(keys)
}

func (q *redisQueue) dump(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
	defer cancel()
	keys, err := q.keys(ctx, q.prefix+"-*")
	slices.Sort(keys)
	for i, k := range keys {
		keys[i] = strconv.Quote(k)
	}
	return dumpRows(keys, err)
}

// --- the server's side ---

// adminList sends an admin command to addr and returns its reply's lines.
func adminList(t *testing.T, addr, cmd string) []string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(cmd + "\n")); err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	lines, err := protocol.ReadAdminList(bufio.NewReader(c))
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return lines
}

// queuedByPriority returns `prioritystatus` as function -> "high normal low".
func queuedByPriority(t *testing.T, addr string) map[string]string {
	t.Helper()
	lines := adminList(t, addr, "prioritystatus")
	st, err := protocol.ParsePriorityStatus(lines)
	if err != nil {
		t.Fatalf("prioritystatus %q: %v", lines, err)
	}
	out := map[string]string{}
	for _, s := range st {
		if s.High+s.Normal+s.Low > 0 {
			out[s.Function] = fmt.Sprint(s.High, s.Normal, s.Low)
		}
	}
	return out
}

// assignment is a JOB_ASSIGN_UNIQ: a job as a worker sees it.
type assignment struct{ handle, fn, unique, data string }

// grabNow asks once for a job with GRAB_JOB_UNIQ; ok is false on NO_JOB.
func (rc *rawConn) grabNow() (a assignment, ok bool) {
	rc.t.Helper()
	rc.send(protocol.GrabJobUniq)
	_ = rc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	f, err := rc.r.Next()
	if err != nil {
		rc.t.Fatalf("waiting for JOB_ASSIGN_UNIQ or NO_JOB: %v", err)
	}
	switch {
	case !f.Text && f.Packet.Type == protocol.JobAssignUniq:
		x := f.Packet.Args
		return assignment{handle: string(x[0]), fn: string(x[1]), unique: string(x[2]), data: string(x[3])}, true
	case !f.Text && f.Packet.Type == protocol.NoJob:
		return assignment{}, false
	}
	rc.t.Fatalf("worker got %v (text %q), want JOB_ASSIGN_UNIQ or NO_JOB", f.Packet.Type, f.Line)
	return assignment{}, false
}

// workOne grabs the one runnable job of fn on addr, checks its unique and
// payload, and completes it.
func workOne(t *testing.T, addr, fn, unique, data string) {
	t.Helper()
	w := dialRaw(t, addr)
	w.send(protocol.CanDo, fn)
	a, ok := w.grabNow()
	if !ok {
		t.Fatalf("worker for %s got NO_JOB, want the job %q", fn, unique)
	}
	if a.fn != fn || a.unique != unique || a.data != data {
		t.Fatalf("worker got %s/%q payload %q, want %s/%q payload %q", a.fn, a.unique, a.data, fn, unique, data)
	}
	w.send(protocol.WorkComplete, a.handle, "done")
	w.c.Close()
}

// TestBinaryExternalReplaysGearmandQueue writes a queue the way gearmand's
// plugin for each external store does (a named unique, an empty unique,
// HIGH and LOW priorities where gearmand keeps them, and an epoch job
// due in an hour), starts gserverd on it, and checks that status,
// prioritystatus and `show unique jobs` list every job, that a worker is
// given exactly the runnable ones with their function, unique and
// payload, and that the rows (keys) of the completed jobs are deleted.
func TestBinaryExternalReplaysGearmandQueue(t *testing.T) {
	t.Parallel()
	for _, b := range externalBackends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			storetest.RequireTCP(t, b.service, b.addr)
			q := b.newQueue(t)
			q.writeGearmand(t, b.jobs)
			if n := q.count(t); n != len(b.jobs) {
				t.Fatalf("after writing %d jobs as gearmand does, the queue holds %d", len(b.jobs), n)
			}

			now := time.Now().Unix()
			wantQueued := map[string][3]int{}
			var wantUniques, functions []string
			runnable := map[assignment]bool{}
			for _, j := range b.jobs {
				c := wantQueued[j.fn]
				c[j.prio]++
				wantQueued[j.fn] = c
				wantUniques = append(wantUniques, j.unique)
				if !slices.Contains(functions, j.fn) {
					functions = append(functions, j.fn)
				}
				if j.when <= now {
					runnable[assignment{fn: j.fn, unique: j.unique, data: j.data}] = true
				}
			}
			future := len(b.jobs) - len(runnable)

			p := startGserverd(t, q.flags(b.addr)...)

			// Replay runs before the first connection is accepted.
			want := map[string]string{}
			for fn, c := range wantQueued {
				want[fn] = fmt.Sprint(c[0], c[1], c[2])
			}
			if got := queuedByPriority(t, p.Addr); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("prioritystatus after replay (function: high normal low) = %v, want %v", got, want)
			}
			for _, fn := range functions {
				c := wantQueued[fn]
				if n := queueTotal(t, p.Addr, fn); n != c[0]+c[1]+c[2] {
					t.Errorf("status total of %s = %d, want %d", fn, n, c[0]+c[1]+c[2])
				}
			}
			gotUniques := adminList(t, p.Addr, "show unique jobs")
			slices.Sort(gotUniques)
			slices.Sort(wantUniques)
			if !slices.Equal(gotUniques, wantUniques) {
				t.Errorf("show unique jobs = %q, want %q", gotUniques, wantUniques)
			}

			w := dialRaw(t, p.Addr)
			for _, fn := range functions {
				w.send(protocol.CanDo, fn)
			}
			for range len(runnable) {
				a, ok := w.grabNow()
				if !ok {
					t.Fatalf("worker got NO_JOB with jobs %v still to come", runnable)
				}
				h := a.handle
				a.handle = ""
				if !runnable[a] {
					t.Fatalf("worker got %s/%q payload %q, not one of the replayed jobs still due %v", a.fn, a.unique, a.data, runnable)
				}
				delete(runnable, a)
				w.send(protocol.WorkComplete, h, "done")
			}
			if a, ok := w.grabNow(); ok {
				t.Fatalf("worker got %s/%q payload %q after every due job was done (an epoch job run early?)", a.fn, a.unique, a.data)
			}

			eventually(t, "the completed jobs leave the queue", func() bool {
				st, err := protocol.ParseStatus(adminList(t, p.Addr, "status"))
				if err != nil {
					t.Fatal(err)
				}
				total := 0
				for _, s := range st {
					total += s.Total
				}
				return total == future
			})
			deadline := time.Now().Add(15 * time.Second)
			for n := q.count(t); n != future; n = q.count(t) {
				if time.Now().After(deadline) {
					t.Fatalf("the store holds %d jobs after the due ones were done, want %d (those not yet due): %s", n, future, q.dump(t))
				}
				time.Sleep(20 * time.Millisecond) // the server deletes in the background: poll the database
			}
		})
	}
}

// TestBinaryExternalOutage starts gserverd on each external store through
// a proxy the test controls. With the proxy cut, SUBMIT_JOB_BG answers
// ERROR QUEUE_ERROR and no job is created (in the server or the store);
// once it is restored, a background submit gets JOB_CREATED again within
// a deadline while the store reconnects, and a worker completes that job,
// which then leaves the store.
func TestBinaryExternalOutage(t *testing.T) {
	t.Parallel()
	for _, b := range externalBackends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			storetest.RequireTCP(t, b.service, b.addr)
			q := b.newQueue(t)
			proxy := storetest.NewProxy(t, b.addr)
			p := startGserverd(t, q.flags(proxy.Addr())...)
			const fn = "outage"

			c := dialRaw(t, p.Addr)
			c.send(protocol.SubmitJobBg, fn, "before", "1")
			c.expect(protocol.JobCreated)
			if n := q.count(t); n != 1 {
				t.Fatalf("before the outage: the store holds %d jobs, want 1", n)
			}
			workOne(t, p.Addr, fn, "before", "1")
			eventually(t, "the job done before the outage leaves the store", func() bool { return q.count(t) == 0 })

			proxy.Cut()
			c.send(protocol.SubmitJobBg, fn, "during", "2")
			if got := c.expect(protocol.Error); len(got) == 0 || got[0] != protocol.CodeQueueError {
				t.Fatalf("SUBMIT_JOB_BG while the database is unreachable: ERROR %q, want code %s", got, protocol.CodeQueueError)
			}
			if n := queueTotal(t, p.Addr, fn); n != 0 {
				t.Fatalf("after the QUEUE_ERROR: status total of %s = %d, want 0 (no job created)", fn, n)
			}

			proxy.Restore()
			deadline := time.Now().Add(20 * time.Second)
			for attempt := 1; ; attempt++ {
				c.send(protocol.SubmitJobBg, fn, "after", "3")
				_ = c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
				f, err := c.r.Next()
				if err != nil {
					t.Fatalf("submit after the database came back: %v", err)
				}
				if !f.Text && f.Packet.Type == protocol.JobCreated {
					t.Logf("JOB_CREATED at attempt %d after the database came back", attempt)
					break
				}
				if f.Text || f.Packet.Type != protocol.Error || len(f.Packet.Args) == 0 || string(f.Packet.Args[0]) != protocol.CodeQueueError {
					t.Fatalf("submit after the database came back: got %v %q, want JOB_CREATED or ERROR QUEUE_ERROR", f.Packet.Type, f.Packet.Args)
				}
				if time.Now().After(deadline) {
					t.Fatalf("submits still fail with QUEUE_ERROR %v after the database came back", 20*time.Second)
				}
				time.Sleep(50 * time.Millisecond) // the store reconnects on its own: retry, bounded
			}
			if n := q.count(t); n != 1 {
				t.Fatalf("after the outage: the store holds %d jobs, want 1 (the refused submit stored nothing)", n)
			}
			workOne(t, p.Addr, fn, "after", "3")
			eventually(t, "the job leaves the server and the store", func() bool {
				return queueTotal(t, p.Addr, fn) == 0 && q.count(t) == 0
			})
		})
	}
}
