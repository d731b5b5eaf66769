package cgroup

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseSelf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want []membership
	}{
		{"v1 and v2 (hybrid)", "4:memory:/a/b\n3:cpu,cpuacct:/\n1:name=systemd:/s\n0::/u\n", []membership{
			{id: 4, controllers: []string{"memory"}, path: "/a/b"},
			{id: 3, controllers: []string{"cpu", "cpuacct"}, path: "/"},
			{id: 1, controllers: []string{"name=systemd"}, path: "/s"},
			{id: 0, path: "/u"},
		}},
		{"v2 only, no final newline", "0::/system.slice/gworkerd.service", []membership{{id: 0, path: "/system.slice/gworkerd.service"}}},
		{"path with colons", "0::/a:b/c", []membership{{id: 0, path: "/a:b/c"}}},
		{"malformed lines skipped", "x:memory:/a\n4:memory\n5:memory:relative\n-1::/n\n\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := parseSelf([]byte(tt.in)); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parseSelf(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

// The mountinfo of this kind of host: v1 hierarchies under
// /sys/fs/cgroup, cgroup2 at unified (hybrid).
const hybridMountInfo = `22 1 0:21 / / rw,relatime - overlay overlay rw
30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime shared:9 - cgroup cgroup rw,xattr,name=systemd
40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`

func TestParseMountInfo(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want []mount
	}{
		{"hybrid", hybridMountInfo, []mount{
			{root: "/", point: "/sys/fs/cgroup/cpu", fstype: "cgroup", super: []string{"rw", "cpu"}},
			{root: "/", point: "/sys/fs/cgroup/memory", fstype: "cgroup", super: []string{"rw", "memory"}},
			{root: "/", point: "/sys/fs/cgroup/systemd", fstype: "cgroup", super: []string{"rw", "xattr", "name=systemd"}},
			{root: "/", point: "/sys/fs/cgroup/unified", fstype: "cgroup2", super: []string{"rw"}},
		}},
		{"container: a part of the hierarchy, escaped space", `1 0 0:1 /kube/pod\0401 /sys/fs/my\040cgroup ro,nosuid shared:1 master:2 - cgroup2 cgroup2 rw,nsdelegate`, []mount{
			{root: "/kube/pod 1", point: "/sys/fs/my cgroup", fstype: "cgroup2", super: []string{"rw", "nsdelegate"}},
		}},
		{"no super options", "1 0 0:1 / /c rw - cgroup2", []mount{{root: "/", point: "/c", fstype: "cgroup2"}}},
		{"malformed", "1 0 0:1 / /c rw cgroup2\n1 0\n- cgroup2 x y\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := parseMountInfo([]byte(tt.in)); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parseMountInfo = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestDirOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		root, point, path string
		want              string
		ok                bool
	}{
		{"/", "/sys/fs/cgroup", "/a/b", "/sys/fs/cgroup/a/b", true},
		{"/", "/sys/fs/cgroup", "/", "/sys/fs/cgroup", true},
		{"/kube/pod", "/sys/fs/cgroup", "/kube/pod/c", "/sys/fs/cgroup/c", true},
		{"/kube/pod", "/sys/fs/cgroup", "/kube/pod", "/sys/fs/cgroup", true},
		{"/kube/pod", "/sys/fs/cgroup", "/kube/pod2/c", "", false},
		{"/kube/pod", "/sys/fs/cgroup", "/other", "", false},
	}
	for _, tt := range tests {
		got, ok := dirOf(mount{root: tt.root, point: tt.point}, tt.path)
		if got != tt.want || ok != tt.ok {
			t.Errorf("dirOf(root %s at %s, %s) = %q, %v; want %q, %v", tt.root, tt.point, tt.path, got, ok, tt.want, tt.ok)
		}
	}
}

func TestStatValue(t *testing.T) {
	t.Parallel()
	stat := []byte("cache 10\nrss 20\ninactive_file 4096\ntotal_inactive_file 8192\nbad x\nneg -1\n")
	tests := []struct {
		key  string
		want int64
		ok   bool
	}{
		{"inactive_file", 4096, true}, {"total_inactive_file", 8192, true}, {"cache", 10, true},
		{"inactive", 0, false}, {"bad", 0, false}, {"neg", 0, false}, {"absent", 0, false},
	}
	for _, tt := range tests {
		if got, ok := statValue(stat, tt.key); got != tt.want || ok != tt.ok {
			t.Errorf("statValue(%q) = %d, %v; want %d, %v", tt.key, got, ok, tt.want, tt.ok)
		}
	}
}

// placements and Current find the v2 and v1 memory cgroups of a
// process from its files: on a hybrid host both, each with its mount.
func TestPlacements(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := Paths{Self: filepath.Join(dir, "cgroup"), MountInfo: filepath.Join(dir, "mountinfo")}
	write(t, p.Self, "4:memory:/process_api/x\n1:cpu:/\n0::/\n")
	write(t, p.MountInfo, hybridMountInfo)
	g1, err := Current(p, V1)
	if err != nil || *g1 != (Group{Version: V1, Dir: "/sys/fs/cgroup/memory/process_api/x"}) {
		t.Errorf("Current v1 = %v, %v", g1, err)
	}
	g2, err := Current(p, V2)
	if err != nil || *g2 != (Group{Version: V2, Dir: "/sys/fs/cgroup/unified"}) {
		t.Errorf("Current v2 = %v, %v", g2, err)
	}
	// v2 only: no v1 memory cgroup, and the error says why.
	write(t, p.Self, "0::/svc\n")
	if g, err := Current(p, V1); err == nil || !strings.Contains(err.Error(), "no cgroup v1 memory hierarchy") {
		t.Errorf("Current v1 of a v2-only process = %v, %v", g, err)
	}
	// A memory line without a mount that shows it.
	write(t, p.Self, "4:memory:/a\n")
	write(t, p.MountInfo, "1 0 0:1 /b /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n")
	if g, err := Current(p, V1); err == nil || !strings.Contains(err.Error(), "no cgroup mount with the memory controller shows") {
		t.Errorf("Current v1 with its cgroup out of the mount = %v, %v", g, err)
	}
}

func write(t testing.TB, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func FuzzParseSelf(f *testing.F) {
	f.Add([]byte("4:memory:/a/b\n3:cpu,cpuacct:/\n0::/u\n"))
	f.Add([]byte("0::/system.slice/gworkerd.service/gworkerd-1/child-2"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, m := range parseSelf(b) {
			if !strings.HasPrefix(m.path, "/") || m.id < 0 {
				t.Fatalf("membership %+v from %q", m, b)
			}
			if strings.Contains(m.path, "\n") {
				t.Fatalf("path %q holds a newline", m.path)
			}
		}
	})
}

func FuzzParseMountInfo(f *testing.F) {
	f.Add([]byte(hybridMountInfo))
	f.Add([]byte(`1 0 0:1 /kube/pod\0401 /sys/fs/my\040cgroup ro shared:1 - cgroup2 cgroup2 rw,nsdelegate`))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, m := range parseMountInfo(b) {
			if m.fstype != "cgroup" && m.fstype != "cgroup2" {
				t.Fatalf("mount %+v of another type", m)
			}
			if !strings.HasPrefix(m.root, "/") || !strings.HasPrefix(m.point, "/") {
				t.Fatalf("mount %+v with a relative path", m)
			}
			// dirOf never leaves the mount point.
			if d, ok := dirOf(m, m.root+"/x"); ok && !strings.HasPrefix(d, filepath.Clean(m.point)) {
				t.Fatalf("dirOf(%+v) = %q, outside the mount", m, d)
			}
		}
	})
}

func FuzzStatValue(f *testing.F) {
	f.Add([]byte("anon 1\ninactive_file 4096\n"), "inactive_file")
	f.Add([]byte("total_inactive_file 9223372036854775807\n"), "total_inactive_file")
	f.Fuzz(func(t *testing.T, b []byte, key string) {
		if v, ok := statValue(b, key); ok && v < 0 {
			t.Fatalf("statValue(%q, %q) = %d", b, key, v)
		}
	})
}
