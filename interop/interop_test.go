package interop

import (
	"testing"

	"github.com/gworkerd/gworkerd/internal/testpeer"
)

// env is what a test gets: the target and a server shared by the
// target's tests (tests use their own function names).
type env struct {
	tg    target
	srv   *testpeer.Process
	names *names
}

func (e *env) addr() string { return e.srv.Addr }

// check is one interop test. gserverdOnly marks the section 0 decisions
// where gserverd deliberately differs from gearmand 1.1.20.
type check struct {
	name         string
	gserverdOnly bool
	run          func(t *testing.T, e *env)
}

// TestInterop runs every group against gearmand and gserverd:
// TestInterop/<target>/<group>/<check>.
func TestInterop(t *testing.T) {
	groups := []struct {
		name   string
		checks func() []check
	}{
		{"Raw", rawChecks},
		{"Admin", adminChecks},
		{"CLI", cliChecks},
		{"PHP", phpChecks},
		{"Perl", perlChecks},
		{"Options", optionChecks},
	}
	for _, tg := range targets() {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			e := &env{tg: tg, srv: tg.start(t), names: &names{}}
			for _, g := range groups {
				t.Run(g.name, func(t *testing.T) {
					for _, c := range g.checks() {
						name := c.name
						if c.gserverdOnly {
							if !tg.gserverd() {
								continue
							}
							name = "gserverd-only/" + name
						}
						t.Run(name, func(t *testing.T) {
							t.Parallel()
							c.run(t, e)
						})
					}
				})
			}
		})
	}
}
