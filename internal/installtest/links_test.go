package installtest

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// protocolDoc is the protocol document the code cites, by its file name
// (spelled in two parts so that this file does not cite it).
const protocolDoc = "PROTOCOL" + ".md"

// Every relative link of the repository's Markdown files leads to a file
// of the repository (a newcomer's clone has nothing beside it), and every
// Go file that names the protocol document names the repository's, in
// docs/.
func TestDocLinks(t *testing.T) {
	t.Parallel()
	mod := moduleRoot(t)
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	checked := 0
	err := filepath.WalkDir(mod, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "bin", "tmp", "testdata", "node_modules":
				return filepath.SkipDir
			}
			return nil
		}
		rel, _ := filepath.Rel(mod, p)
		switch filepath.Ext(p) {
		case ".md":
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			for _, m := range link.FindAllStringSubmatch(string(b), -1) {
				target, _, _ := strings.Cut(m[1], "#")
				if target == "" || strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				checked++
				abs := filepath.Join(filepath.Dir(p), target)
				if r, err := filepath.Rel(mod, abs); err != nil || strings.HasPrefix(r, "..") || filepath.IsAbs(target) {
					t.Errorf("%s links %s, outside the repository", rel, m[1])
					continue
				}
				if _, err := os.Stat(abs); err != nil {
					t.Errorf("%s links %s: %v", rel, m[1], err)
				}
			}
		case ".go":
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s := string(b)
			for i := strings.Index(s, protocolDoc); i >= 0; {
				if !strings.HasSuffix(s[:i], "docs/") {
					line := strings.Count(s[:i], "\n") + 1
					t.Errorf("%s:%d cites %s; the repository's is docs/%[3]s", rel, line, protocolDoc)
				}
				next := strings.Index(s[i+1:], protocolDoc)
				if next < 0 {
					break
				}
				i += 1 + next
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked == 0 {
		t.Fatal("no relative link found in the repository's Markdown files")
	}
	if _, err := os.Stat(filepath.Join(mod, "docs", protocolDoc)); err != nil {
		t.Errorf("the protocol document the code cites: %v", err)
	}
}
