package storeconf

import (
	"reflect"
	"testing"
)

func TestParseQueueType(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, want string
		standIn  bool
		err      string
	}{
		{in: "embedded", want: Embedded},
		{in: " Postgres ", want: Postgres},
		{in: "PGSQL", want: Postgres},
		{in: "libpq", want: Postgres},
		{in: "mariadb", want: MySQL},
		{in: "memory", want: Builtin},
		{in: "sqlite3", want: SQLite},
		{in: "libmemcached", want: Embedded, standIn: true},
		{in: "LibTokyoCabinet", want: Embedded, standIn: true},
		{in: "libdrizzle", err: `queue type "libdrizzle" is not supported by gserverd; use -q mysql`},
		{in: "", err: `want one of builtin, embedded, postgres, mysql, redis, libsqlite3, got ""`},
		{in: "nosql", err: `want one of builtin, embedded, postgres, mysql, redis, libsqlite3, got "nosql"`},
	} {
		got, standIn, err := ParseQueueType(tc.in)
		errText := ""
		if err != nil {
			errText = err.Error()
		}
		if got != tc.want || standIn != tc.standIn || errText != tc.err {
			t.Errorf("ParseQueueType(%q) = %q, %v, %q; want %q, %v, %q", tc.in, got, standIn, errText, tc.want, tc.standIn, tc.err)
		}
	}
	if got := StandIns(); !reflect.DeepEqual(got, []string{"libmemcached", "libtokyocabinet"}) {
		t.Errorf("StandIns() = %q", got)
	}
	for alias, canonical := range Aliases() {
		if got, _, err := ParseQueueType(alias); err != nil || got != canonical {
			t.Errorf("alias %q: %q, %v; want %q", alias, got, err, canonical)
		}
	}
}
