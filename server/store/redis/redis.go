// Package redis keeps gserverd's background jobs in Redis (`-q redis
// --redis-server --redis-port --redis-password --redis-prefix`), through
// go-redis.
//
// Each job is one key, named as gearmand names it: PREFIX-FUNCTION-KEY.
// gearmand stores only the payload there, as a string, and loses the
// priority and run-at time; gserverd stores a hash with every field (f
// function, k key, p priority, w when, r reducer, d data, s sequence). On
// replay both kinds are read, so a queue left behind by gearmand's redis
// plugin is replayed (as NORMAL jobs to run now, which is all gearmand
// kept); gearmand cannot read a queue gserverd wrote.
//
// The sequence number comes from the counter PREFIX:seq and orders replay
// by add order (gearmand's keys come first). Add writes all its jobs in
// one Lua script, atomically; a job with the same reference replaces the
// stored one. Delete is a Lua script too: it compares the stored version
// with the ref's (store.Ref.Version) and deletes only an older record (a
// string written by gearmand has none: it is older than any). Replay reads every key with SCAN (never KEYS) into memory
// and sorts it.
//
// Durability is Redis's own: Add returns once Redis has the job in memory.
// Run Redis with appendonly yes and appendfsync always (or everysec, and
// accept a second of loss) to keep jobs across a Redis crash.
//
// go-redis reconnects by itself and retries a command that failed on a
// broken connection (3 times, with backoff). While Redis is unreachable
// Add returns an error (the server answers QUEUE_ERROR), and work resumes
// when it is back. Every read and write of a command ends at the deadline
// of the call's ctx (the server gives every call one, store.WithTimeout)
// and at Options.IOTimeout, even while Redis does not answer at all.
package redis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/gworkerd/gworkerd/server/store"
	"github.com/gworkerd/gworkerd/server/store/storeconf"
)

// DefaultPrefix is gearmand's default --redis-prefix.
const DefaultPrefix = storeconf.DefaultRedisPrefix

// Options configure a Store; the names follow gearmand's flags.
type Options struct {
	// Server is Redis's host. Default storeconf.DefaultRedisServer.
	Server string
	// Port is Redis's port. Default storeconf.DefaultRedisPort.
	Port int
	// Password for AUTH. Default "": none.
	Password string
	// Prefix starts every key. Default "_gear_".
	Prefix string
	// DB is the Redis database number. Default 0.
	DB int
	// IOTimeout bounds each read and write of a command on the
	// connection, besides the deadline of the call's ctx: it is what ends
	// a round trip of Replay (which makes many) when the ctx is only
	// cancelled, since go-redis interrupts I/O at deadlines, not at
	// cancellation. Default 30s.
	IOTimeout time.Duration
	// Logger receives connection errors. Default: discard.
	Logger logrus.FieldLogger
}

func (o Options) withDefaults() Options {
	if o.Server == "" {
		o.Server = storeconf.DefaultRedisServer
	}
	if o.Port == 0 {
		o.Port = storeconf.DefaultRedisPort
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.IOTimeout <= 0 {
		o.IOTimeout = 30 * time.Second
	}
	if o.Logger == nil {
		l := logrus.New()
		l.Out = io.Discard
		o.Logger = l
	}
	return o
}

// Store is a Redis-backed store.Store.
type Store struct {
	c      *goredis.Client
	log    logrus.FieldLogger
	prefix string

	gate store.Gate
}

// addScript stores the jobs of one Add: KEYS = job keys..., seq counter;
// ARGV = 7 fields per job.
var addScript = goredis.NewScript(`
local seqkey = KEYS[#KEYS]
for i = 1, #KEYS - 1 do
  local a = (i - 1) * 7
  local s = redis.call('INCR', seqkey)
  redis.call('DEL', KEYS[i])
  redis.call('HSET', KEYS[i], 'f', ARGV[a+1], 'k', ARGV[a+2], 'p', ARGV[a+3], 'w', ARGV[a+4], 'r', ARGV[a+5], 'd', ARGV[a+6], 's', s, 'v', ARGV[a+7])
end
return #KEYS - 1
`)

// deleteScript deletes the jobs of one Delete: KEYS = job keys, ARGV =
// their refs' versions in decimal ("0": whatever is stored). A key is
// deleted when its stored version (v of a hash; 0 for a hash without it
// or a string) is lower. Versions are compared as digit strings, not as
// Lua numbers (doubles, which lose the low digits of an int64).
var deleteScript = goredis.NewScript(`
local function less(a, b)
  if #a ~= #b then return #a < #b end
  for i = 1, #a do
    local x, y = a:byte(i), b:byte(i)
    if x ~= y then return x < y end
  end
  return false
end
local n = 0
for i = 1, #KEYS do
  local want = ARGV[i]
  local del = want == '0'
  if not del then
    local cur = '0'
    if redis.call('TYPE', KEYS[i]).ok == 'hash' then
      cur = redis.call('HGET', KEYS[i], 'v') or '0'
    end
    del = less(cur, want)
  end
  if del then n = n + redis.call('DEL', KEYS[i]) end
end
return n
`)

// Open connects to Redis and checks that it answers.
func Open(ctx context.Context, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	if opts.Port < 1 || opts.Port > 65535 {
		return nil, fmt.Errorf("redis: port %d out of range", opts.Port)
	}
	c := goredis.NewClient(&goredis.Options{
		Addr:         net.JoinHostPort(opts.Server, strconv.Itoa(opts.Port)),
		Password:     opts.Password,
		DB:           opts.DB,
		Protocol:     2,
		DialTimeout:  5 * time.Second,
		ReadTimeout:  opts.IOTimeout,
		WriteTimeout: opts.IOTimeout,
		PoolSize:     8,
		// The deadline of each call's ctx bounds its reads and writes
		// (store.WithTimeout), not only ReadTimeout and WriteTimeout.
		ContextTimeoutEnabled: true,
	})
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("redis: connect %s:%d: %w", opts.Server, opts.Port, err)
	}
	return &Store{c: c, log: opts.Logger.WithField("store", "redis"), prefix: opts.Prefix}, nil
}

// KeepsAddOrder reports that Replay returns jobs in add order.
func (s *Store) KeepsAddOrder() bool { return true }

func (s *Store) key(r store.Ref) string {
	return s.prefix + "-" + r.Function + "-" + r.Key
}

// Add stores jobs atomically.
func (s *Store) Add(ctx context.Context, jobs ...store.Job) error {
	if err := s.gate.Enter(ctx); err != nil {
		return err
	}
	if len(jobs) == 0 {
		return nil
	}
	keys := make([]string, 0, len(jobs)+1)
	args := make([]any, 0, 7*len(jobs))
	for i := range jobs {
		j := &jobs[i]
		if j.Version < 0 {
			return fmt.Errorf("redis: add job %q: negative version %d", j.Key, j.Version)
		}
		keys = append(keys, s.key(j.Ref()))
		args = append(args, j.Function, j.Key, j.Priority, j.When, j.Reducer, j.Data, j.Version)
	}
	keys = append(keys, s.prefix+":seq")
	if err := addScript.Run(ctx, s.c, keys, args...).Err(); err != nil {
		return fmt.Errorf("redis: add %d jobs: %w", len(jobs), err)
	}
	return nil
}

// Delete removes jobs whose stored version is below the ref's
// (store.Ref.Version), atomically; unknown refs are ignored.
func (s *Store) Delete(ctx context.Context, refs ...store.Ref) error {
	if err := s.gate.Enter(ctx); err != nil {
		return err
	}
	if len(refs) == 0 {
		return nil
	}
	keys := make([]string, len(refs))
	args := make([]any, len(refs))
	for i, r := range refs {
		if r.Version < 0 {
			return fmt.Errorf("redis: delete job %q: negative version %d", r.Key, r.Version)
		}
		keys[i] = s.key(r)
		args[i] = r.Version
	}
	if err := deleteScript.Run(ctx, s.c, keys, args...).Err(); err != nil {
		return fmt.Errorf("redis: delete %d jobs: %w", len(refs), err)
	}
	return nil
}

// globEscape escapes the glob characters of SCAN MATCH.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

type seqJob struct {
	seq int64
	job store.Job
}

// Replay reads every job, sorts them by add order and calls fn for each.
func (s *Store) Replay(ctx context.Context, fn func(store.Job) error) error {
	if err := s.gate.Enter(ctx); err != nil {
		return err
	}
	seen := map[string]bool{}
	var all []seqJob
	iter := s.c.Scan(ctx, 0, globEscape(s.prefix+"-")+"*", 1000).Iterator()
	var batch []string
	flush := func() error {
		jobs, err := s.fetch(ctx, batch)
		if err != nil {
			return err
		}
		all = append(all, jobs...)
		batch = batch[:0]
		store.Alive(ctx) // no job is delivered before the end: say the reads go on
		return nil
	}
	for iter.Next(ctx) {
		k := iter.Val()
		if seen[k] {
			continue
		}
		seen[k] = true
		batch = append(batch, k)
		if len(batch) == 500 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := iter.Err(); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		return fmt.Errorf("redis: replay: scan: %w", err)
	}
	if err := flush(); err != nil {
		return err
	}
	sort.SliceStable(all, func(a, b int) bool { return all[a].seq < all[b].seq })
	for _, sj := range all {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(sj.job); err != nil {
			return err
		}
	}
	return nil
}

// fetch reads keys: hashes written by gserverd, strings written by gearmand.
// A key deleted since SCAN saw it is skipped.
func (s *Store) fetch(ctx context.Context, keys []string) ([]seqJob, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	pipe := s.c.Pipeline()
	types := make([]*goredis.StatusCmd, len(keys))
	for i, k := range keys {
		types[i] = pipe.Type(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("redis: replay: %w", err)
	}
	pipe = s.c.Pipeline()
	hashes := map[int]*goredis.MapStringStringCmd{}
	strs := map[int]*goredis.StringCmd{}
	for i, k := range keys {
		switch types[i].Val() {
		case "hash":
			hashes[i] = pipe.HGetAll(ctx, k)
		case "string":
			strs[i] = pipe.Get(ctx, k)
		case "none":
		default:
			s.log.WithField("key", k).Warn("redis replay skips a key of unexpected type")
		}
	}
	if len(hashes)+len(strs) == 0 {
		return nil, nil
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, goredis.Nil) {
		return nil, fmt.Errorf("redis: replay: %w", err)
	}
	var out []seqJob
	for i, k := range keys {
		if c, ok := hashes[i]; ok {
			h := c.Val()
			if len(h) == 0 {
				continue // deleted meanwhile
			}
			j, seq, err := fromHash(h)
			if err != nil {
				return nil, fmt.Errorf("redis: replay: key %q: %w", k, err)
			}
			out = append(out, seqJob{seq: seq, job: j})
		} else if c, ok := strs[i]; ok {
			if errors.Is(c.Err(), goredis.Nil) {
				continue
			}
			fn, unique, ok := strings.Cut(strings.TrimPrefix(k, s.prefix+"-"), "-")
			if !ok {
				s.log.WithField("key", k).Warn("redis replay skips a key not named PREFIX-FUNCTION-UNIQUE")
				continue
			}
			j := store.Job{Function: fn, Key: unique, Priority: 1}
			if v := c.Val(); v != "" {
				j.Data = []byte(v)
			}
			out = append(out, seqJob{seq: 0, job: j})
		}
	}
	return out, nil
}

func fromHash(h map[string]string) (store.Job, int64, error) {
	j := store.Job{Function: h["f"], Key: h["k"], Reducer: h["r"]}
	p, err := strconv.Atoi(h["p"])
	if err != nil {
		return j, 0, fmt.Errorf("priority %q: %w", h["p"], err)
	}
	j.Priority = p
	if j.When, err = strconv.ParseInt(h["w"], 10, 64); err != nil {
		return j, 0, fmt.Errorf("when %q: %w", h["w"], err)
	}
	seq, err := strconv.ParseInt(h["s"], 10, 64)
	if err != nil {
		return j, 0, fmt.Errorf("seq %q: %w", h["s"], err)
	}
	if v, ok := h["v"]; ok {
		if j.Version, err = strconv.ParseInt(v, 10, 64); err != nil {
			return j, 0, fmt.Errorf("version %q: %w", v, err)
		}
	}
	if d := h["d"]; d != "" {
		j.Data = []byte(d)
	}
	return j, seq, nil
}

// Close closes the connections. Calling it again returns nil.
func (s *Store) Close() error {
	if !s.gate.Close() {
		return nil
	}
	return s.c.Close()
}
