package main

import (
	"errors"
	"strings"
	"testing"
)

const cobraHelp = `supervised worker daemon

Usage:
  prog [command]

Available Commands:
  check       validate the config
  completion  Generate the autocompletion script
  help        Help about any command
  start       start the daemon

Flags:
  -c, --config string   config file
`

func TestManPage(t *testing.T) {
	t.Parallel()
	helps := map[string]string{
		"":      cobraHelp,
		"check": "Usage:\n  prog check [flags]\n.dot at the start\n'quote at the start\nback\\slash",
		"start": "Usage:\n  prog start --foreground\n",
		"queue": "Usage:\n  prog queue export\n",
	}
	var asked []string
	page, err := manPage("prog", "8", "a daemon", "prog 1.0", []string{"queue"}, func(args ...string) (string, error) {
		k := strings.Join(args, " ")
		asked = append(asked, k)
		return helps[k], nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(asked, ","), ",check,start,queue"; got != want {
		t.Errorf("help asked for %q, want %q (not help or completion)", got, want)
	}
	for _, want := range []string{
		`.TH "PROG" "8" "" "prog 1.0" "System Administration"`,
		".SH NAME\nprog \\- a daemon\n",
		`  \-c, \-\-config string   config file`,
		".SS \"prog check\"\n.nf\n",
		"\n\\&.dot at the start\n",
		"\n\\&'quote at the start\n",
		`back\eslash`,
		`prog start \-\-foreground`,
		".SS \"prog queue\"\n.nf\nUsage:\n  prog queue export\n",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q:\n%s", want, page)
		}
	}
	if _, err := manPage("prog", "1", "x", "y", nil, func(...string) (string, error) { return "", errors.New("boom") }); err == nil {
		t.Errorf("a failing --help gave no error")
	}
	if _, err := manPage("prog", "1", "x", "y", []string{"-rf"}, func(...string) (string, error) { return "", nil }); err == nil {
		t.Errorf("a subcommand named -rf was accepted")
	}
}

// Every line of a page made from any help text is either one of ours (a
// macro) or text that roff cannot take for a request or an escape.
func FuzzManPage(f *testing.F) {
	f.Add(cobraHelp, "sub help\n.TH injected")
	f.Add("Usage: x\n\\fBbold\n'br\n", "")
	f.Fuzz(func(t *testing.T, top, sub string) {
		page, err := manPage("prog", "1", "summary", "src", nil, func(args ...string) (string, error) {
			if len(args) == 0 {
				return top, nil
			}
			return sub, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(page, "\n") {
			if strings.HasPrefix(line, ".") || strings.HasPrefix(line, "'") {
				m := strings.Fields(line)[0]
				switch m {
				case ".TH", ".SH", ".SS", ".nf", ".fi":
				default:
					t.Fatalf("input became the request %q", line)
				}
			}
			if i := strings.IndexByte(line, '\\'); i >= 0 && !strings.HasPrefix(line, ".") {
				for j := 0; j < len(line); j++ {
					if line[j] == '\\' {
						if j+1 >= len(line) || !strings.ContainsRune("e-&", rune(line[j+1])) {
							t.Fatalf("stray escape in %q", line)
						}
						j++
					}
				}
			}
		}
	})
}
