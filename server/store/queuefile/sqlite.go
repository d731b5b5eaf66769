package queuefile

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"time"

	"github.com/gworkerd/gworkerd/server/store"
	"github.com/gworkerd/gworkerd/server/store/sqlite"
)

// DefaultSQLiteTable is gearmand's default --libsqlite3-table.
const DefaultSQLiteTable = sqlite.DefaultTable

var sqliteTableRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ImportGearmandSQLite adds every job of the queue file gearmand's
// libsqlite3 plugin keeps (`--libsqlite3-db path --libsqlite3-table
// table`; table "" means gearman_queue) to s and returns how many it added.
// The file is opened read-only and left as it is.
//
// gearmand keys rows by (unique_key, function_name); a row whose unique is
// empty gets a key from store.NewKey, as gserverd gives every job with an
// empty unique. A file without a when_to_run column (older gearmand)
// imports its jobs to run now.
func ImportGearmandSQLite(ctx context.Context, path, table string, s store.Store) (int, error) {
	if table == "" {
		table = DefaultSQLiteTable
	}
	if !sqliteTableRE.MatchString(table) {
		return 0, fmt.Errorf("queuefile: sqlite table name %q: want letters, digits and _", table)
	}
	if _, err := os.Stat(path); err != nil {
		return 0, fmt.Errorf("queuefile: gearmand sqlite file: %w", err)
	}
	// An absolute path: a relative one in a file: URI reads as a host
	// ("invalid uri authority").
	dsn, err := sqlite.DSN(path, url.Values{"mode": {"ro"}})
	if err != nil {
		return 0, fmt.Errorf("queuefile: %w", err)
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return 0, fmt.Errorf("queuefile: open %s: %w", path, err)
	}
	defer db.Close()

	cols := map[string]bool{}
	rows, err := db.QueryContext(ctx, `SELECT name FROM pragma_table_info('`+table+`')`)
	if err != nil {
		return 0, fmt.Errorf("queuefile: read %s: %w", path, err)
	}
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			rows.Close()
			return 0, fmt.Errorf("queuefile: read %s: %w", path, err)
		}
		cols[c] = true
	}
	rows.Close()
	for _, c := range []string{"unique_key", "function_name", "priority", "data"} {
		if !cols[c] {
			return 0, fmt.Errorf("queuefile: %s: table %q has no column %s (is it gearmand's queue?)", path, table, c)
		}
	}
	when := "0"
	if cols["when_to_run"] {
		when = "COALESCE(when_to_run, 0)"
	}
	q := `SELECT COALESCE(unique_key, ''), COALESCE(function_name, ''), COALESCE(priority, 1), COALESCE(data, X''), ` +
		when + ` FROM "` + table + `" ORDER BY rowid`
	rows, err = db.QueryContext(ctx, q)
	if err != nil {
		return 0, fmt.Errorf("queuefile: read %s: %w", path, err)
	}
	defer rows.Close()
	now := time.Now()
	var (
		batch []store.Job
		n     int
		size  int
		seq   uint64
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := s.Add(ctx, batch...); err != nil {
			return fmt.Errorf("queuefile: import %s: %w", path, err)
		}
		n += len(batch)
		batch, size = batch[:0], 0
		return nil
	}
	for rows.Next() {
		var (
			j    store.Job
			data []byte
		)
		if err := rows.Scan(&j.Key, &j.Function, &j.Priority, &data, &j.When); err != nil {
			return n, fmt.Errorf("queuefile: read %s: %w", path, err)
		}
		if len(data) > 0 {
			j.Data = data
		}
		if j.Key == "" {
			seq++
			j.Key = store.NewKey(now, seq)
		}
		batch = append(batch, j)
		size += len(data)
		if len(batch) >= batchJobs || size >= batchBytes {
			if err := flush(); err != nil {
				return n, err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("queuefile: read %s: %w", path, err)
	}
	return n, flush()
}
