package migrate

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Regenerate the golden files after a deliberate change of the output:
//
//	go test ./config/migrate -run TestGolden -update
var update = flag.Bool("update", false, "rewrite the golden files under testdata/ from the current output")

// The example configurations of deploy/examples import to the YAML and
// report in testdata/<file>.yaml and testdata/<file>.report, and the YAML
// loads.
func TestGolden(t *testing.T) {
	t.Parallel()
	env := fixedEnv(map[string]string{"HOME": "/home/app"})
	for _, tc := range []struct {
		example string
		convert func([]byte, Options) (*Result, error)
		check   []string // "path=value" of the loaded config
	}{
		{"gearmanmanager/config.ini", GearmanManager, gmExampleWant},
		{"gearmanmanager/config.php", GearmanManager, gmExampleWant},
		{"supervisord/workers.conf", Supervisord, []string{
			"functions=[mailer thumbnailer]",
			`mailer.command=["php" "/srv/app/worker.php" "--function=send_mail"]`, "mailer.count=4", "mailer.dir=/srv/app",
			"mailer.user=www-data", "mailer.stop_timeout=1m0s", "mailer.ready_after=2s", "mailer.fatal_after=4",
			"mailer.env=map[APP_ENV:production GEARMAN_SERVERS:10.0.0.1:4730,10.0.0.2:4730 MAIL_FROM:noreply@example.com]",
			`thumbnailer.command=["/usr/bin/python3" "/etc/supervisor/conf.d/thumbnailer.py" "--quality" "85" "--name=thumbnailer"]`,
			"thumbnailer.count=1", "thumbnailer.stop_timeout=10s", "thumbnailer.fatal_after=11",
		}},
	} {
		name := filepath.Base(tc.example)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(filepath.Join(exampleDir, tc.example))
			if err != nil {
				t.Fatal(err)
			}
			// The name and directory the file would have on a server, so
			// that the golden files hold no path of this machine.
			dir := "/etc/gearman-manager"
			if strings.HasPrefix(tc.example, "supervisord/") {
				dir = "/etc/supervisor/conf.d"
			}
			res, err := tc.convert(data, Options{Name: name, Dir: dir, LookupEnv: env, Hostname: "worker1"})
			if err != nil {
				t.Fatal(err)
			}
			w := checkOutput(t, t.TempDir(), res)
			for _, kv := range tc.check {
				path, want, _ := strings.Cut(kv, "=")
				if got := field(w, path); got != want {
					t.Errorf("%s = %s, want %s", path, got, want)
				}
			}
			y, err := res.YAML()
			if err != nil {
				t.Fatal(err)
			}
			golden(t, name+".yaml", y)
			golden(t, name+".report", []byte(res.Report()))
		})
	}
}

// gmExampleWant is what both forms of the GearmanManager example give.
var gmExampleWant = []string{
	"servers=[10.0.0.1:4730 10.0.0.2:4730]", "worker_dirs=[/srv/app/workers]", "include=[]", "exclude=[Deprecated_Report]",
	"pid_file=/var/run/gearman-manager.pid", "log_file=/var/log/gearman-manager.log", "stop_timeout=1m0s",
	"functions=[Reverse_String Upper_String]",
	"*.count=2", "*.timeout=5m0s", "*.max_jobs=500", "*.max_lifetime=1h0m0s", "*.lifetime_splay=5m0s", "*.user=www-data",
	"Reverse_String.count=3", "Reverse_String.timeout=10m0s", "Upper_String.count=2", "Upper_String.timeout=5m0s",
}

// The two forms of the GearmanManager example hold the same settings:
// their YAML differs only in the comments that name the file and lines.
func TestGearmanManagerFormsAgree(t *testing.T) {
	t.Parallel()
	body := func(file string) string {
		t.Helper()
		data, err := os.ReadFile(filepath.Join(exampleDir, "gearmanmanager", file))
		if err != nil {
			t.Fatal(err)
		}
		res, err := GearmanManager(data, Options{Name: file, Dir: "/etc/gearman-manager"})
		if err != nil {
			t.Fatal(err)
		}
		y, err := res.YAML()
		if err != nil {
			t.Fatal(err)
		}
		_, b, _ := strings.Cut(string(y), "\n\n")
		return b
	}
	if ini, php := body("config.ini"), body("config.php"); ini != php {
		t.Errorf("config.ini gives\n%s\nconfig.php gives\n%s", ini, php)
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./config/migrate -run TestGolden -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the output (if the change is deliberate, run go test ./config/migrate -run TestGolden -update):\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}
