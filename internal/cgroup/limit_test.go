package cgroup

import (
	"os"
	"path/filepath"
	"testing"
)

// TestMemoryLimit reads the memory limit of the process's cgroup
// from fake /proc/self/cgroup files and cgroup trees: v1, v2, the hybrid
// layout (v2 mounted at unified without the memory controller), a parent
// with a smaller limit, no limit, and a container whose cgroup path is
// not visible in its mount namespace.
func TestMemoryLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		self  string
		files map[string]string // path under root: content
		want  int64             // 0: no limit
		from  string            // the file the limit comes from
	}{
		{"v1", "4:memory:/a/b\n0::/\n",
			map[string]string{"memory/a/b/memory.limit_in_bytes": "1610612736\n", "memory/a/memory.limit_in_bytes": "9223372036854771712\n",
				"memory/memory.limit_in_bytes": "9223372036854771712\n"},
			1610612736, "memory/a/b/memory.limit_in_bytes"},
		{"v1 parent smaller", "4:memory:/a/b\n",
			map[string]string{"memory/a/b/memory.limit_in_bytes": "2000000000", "memory/a/memory.limit_in_bytes": "1000000000"},
			1000000000, "memory/a/memory.limit_in_bytes"},
		{"v1 unlimited", "7:cpu,memory:/x\n",
			map[string]string{"memory/x/memory.limit_in_bytes": "9223372036854771712", "memory/memory.limit_in_bytes": "9223372036854771712"},
			0, ""},
		{"v1 combined controllers", "7:memory,cpu:/x\n",
			map[string]string{"memory/x/memory.limit_in_bytes": "536870912"},
			536870912, "memory/x/memory.limit_in_bytes"},
		{"v2", "0::/system.slice/g.service\n",
			map[string]string{"cgroup.controllers": "cpu memory", "system.slice/g.service/memory.max": "268435456\n", "system.slice/memory.max": "max\n"},
			268435456, "system.slice/g.service/memory.max"},
		{"v2 max", "0::/s\n",
			map[string]string{"cgroup.controllers": "memory", "s/memory.max": "max\n"},
			0, ""},
		{"hybrid: v2 without memory, v1 memory", "4:memory:/p\n0::/p\n",
			map[string]string{"unified/p/cgroup.procs": "", "memory/p/memory.limit_in_bytes": "123456789"},
			123456789, "memory/p/memory.limit_in_bytes"},
		{"container: path not visible, limit at the mount root", "0::/kubepods/pod1/c1\n",
			map[string]string{"cgroup.controllers": "memory", "memory.max": "1073741824"},
			1073741824, "memory.max"},
		{"no cgroup file entries", "", nil, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			root := filepath.Join(dir, "cgroup")
			for p, c := range tt.files {
				f := filepath.Join(root, p)
				if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(f, []byte(c), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			self := filepath.Join(dir, "self-cgroup")
			if err := os.WriteFile(self, []byte(tt.self), 0o644); err != nil {
				t.Fatal(err)
			}
			got, ok := MemoryLimit(Paths{Self: self, Root: root})
			if tt.want == 0 {
				if ok {
					t.Fatalf("limit %d from %s, want none", got.Bytes, got.File)
				}
				return
			}
			if !ok || got.Bytes != tt.want || got.File != filepath.Join(root, tt.from) {
				t.Fatalf("limit %d from %q (found %v), want %d from %q", got.Bytes, got.File, ok, tt.want, filepath.Join(root, tt.from))
			}
		})
	}
}
