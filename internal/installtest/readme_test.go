package installtest

import (
	"bufio"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// command is one line of a tagged block of the README's Install section.
type command struct {
	line   int    // its line number in README.md
	text   string // the shell command, its comment removed
	prints string // X of a trailing "# prints X": its standard output holds X
}

// sectionHeading opens the section the blocks are read from; the next
// heading of the same level closes it.
const sectionHeading = "## Install"

// tagPrefix begins the second word of a block's info string (```sh
// install-source) for the blocks the tests run or check.
const tagPrefix = "install-"

var errNoSection = errors.New("README has no " + sectionHeading + " section")

// installBlocks returns the commands of each tagged fenced block of the
// README's Install section, by tag, and the section's text.
func installBlocks(readme string) (map[string][]command, string, error) {
	blocks := map[string][]command{}
	var section strings.Builder
	in, found := false, false
	tag, fence := "", false
	pending, pendingLine := "", 0 // a line continued with a backslash
	sc := bufio.NewScanner(strings.NewReader(readme))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if !fence {
			switch {
			case line == sectionHeading:
				if found {
					return nil, "", fmt.Errorf("README line %d: a second %s section", n, sectionHeading)
				}
				in, found = true, true
				continue
			case in && strings.HasPrefix(line, "## "):
				in = false
			}
		}
		if !in {
			continue
		}
		section.WriteString(line + "\n")
		if strings.HasPrefix(line, "```") {
			if fence {
				if pending != "" {
					return nil, "", fmt.Errorf("README line %d: the block ends inside a continued line", pendingLine)
				}
				fence, tag = false, ""
				continue
			}
			fence = true
			info := strings.Fields(line[3:])
			if len(info) >= 2 && strings.HasPrefix(info[1], tagPrefix) {
				tag = info[1]
				if _, dup := blocks[tag]; dup {
					return nil, "", fmt.Errorf("README line %d: a second block %s", n, tag)
				}
				blocks[tag] = nil
			}
			continue
		}
		if !fence || tag == "" {
			continue
		}
		if pending == "" {
			pendingLine = n
		}
		if strings.HasSuffix(line, "\\") {
			pending += strings.TrimSuffix(line, "\\") + " "
			continue
		}
		c, err := parseLine(pending + line)
		pending = ""
		if err != nil {
			return nil, "", fmt.Errorf("README line %d: %w", pendingLine, err)
		}
		if c.text != "" {
			c.line = pendingLine
			blocks[tag] = append(blocks[tag], c)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, "", err
	}
	if fence {
		return nil, "", errors.New("README: a fenced block of the Install section is not closed")
	}
	if !found {
		return nil, "", errNoSection
	}
	return blocks, section.String(), nil
}

// parseLine splits a shell line into the command and its comment (a #
// that begins a word, outside quotes), and reads "prints X" from the
// comment.
func parseLine(s string) (command, error) {
	var quote rune
	cut := -1
	prev := ' '
	for i, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '\'' || r == '"':
			quote = r
		case r == '#' && (prev == ' ' || prev == '\t'):
			cut = i
		}
		if cut >= 0 {
			break
		}
		prev = r
	}
	if quote != 0 {
		return command{}, fmt.Errorf("unbalanced quote in %q", s)
	}
	c := command{text: strings.TrimSpace(s)}
	if cut >= 0 {
		c.text = strings.TrimSpace(s[:cut])
		comment := strings.TrimSpace(s[cut+1:])
		if p, ok := strings.CutPrefix(comment, "prints "); ok {
			c.prints = strings.TrimSpace(p)
		}
	}
	return c, nil
}

// simpleCommands splits a command line at its operators (| ; & && ||)
// into simple commands, each a list of words, quotes removed. Command
// substitution, redirection and variables are refused: the tests run
// only lines whose every program they can name.
func simpleCommands(s string) ([][]string, error) {
	var cmds [][]string
	var words []string
	var word strings.Builder
	inWord := false
	var quote rune
	endWord := func() {
		if inWord {
			words = append(words, word.String())
			word.Reset()
			inWord = false
		}
	}
	endCmd := func() error {
		endWord()
		if len(words) == 0 {
			return fmt.Errorf("an empty command in %q", s)
		}
		cmds = append(cmds, words)
		words = nil
		return nil
	}
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
				continue
			}
			if quote == '"' && (r == '$' || r == '`' || r == '\\') {
				return nil, fmt.Errorf("%q: %q inside double quotes", s, r)
			}
			word.WriteRune(r)
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			endWord()
		case r == '|' || r == ';' || r == '&':
			if r != ';' && i+1 < len(rs) && rs[i+1] == r {
				i++ // && or ||
			}
			if err := endCmd(); err != nil {
				return nil, err
			}
		case strings.ContainsRune("$`\\<>(){}*?[]~", r):
			return nil, fmt.Errorf("%q: %q is not run by the tests (name every program and file)", s, r)
		default:
			word.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unbalanced quote in %q", s)
	}
	if err := endCmd(); err != nil {
		return nil, err
	}
	return cmds, nil
}

// absPath is an absolute path that begins a word (or follows a =).
var absPath = regexp.MustCompile(`(^|[\s=])/`)

// inRoot moves every absolute path of a command line under root.
func inRoot(s, root string) string {
	return absPath.ReplaceAllString(s, "${1}"+root+"/")
}

func TestInstallBlocks(t *testing.T) {
	t.Parallel()
	const readme = "# x\n\n```sh install-none\nnot in the section\n```\n" +
		"## Install\n\ntext\n```sh\nuntagged # prints no\n```\n" +
		"```sh install-a\nmake build        # ./bin\nsudo make \\\n  install\n\n# a comment line\n" +
		"echo 'a # b' | gclient x - # prints olleh  \n```\n" +
		"```console install-b\n$ x\n```\n" +
		"## Next\n```sh install-c\nlater\n```\n"
	got, section, err := installBlocks(readme)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]command{
		"install-a": {
			{line: 13, text: "make build"},
			{line: 14, text: "sudo make    install"},
			{line: 18, text: "echo 'a # b' | gclient x -", prints: "olleh"},
		},
		"install-b": {{line: 21, text: "$ x"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("installBlocks:\n got %+v\nwant %+v", got, want)
	}
	if !strings.HasPrefix(section, "\ntext\n") || strings.Contains(section, "Next") || strings.Contains(section, "not in") {
		t.Errorf("section = %q", section)
	}

	for _, tc := range []struct {
		name, readme, err string
	}{
		{"no section", "# x\n## Other\n", "no ## Install"},
		{"two sections", "## Install\n## Install\n", "a second ## Install"},
		{"unclosed", "## Install\n```sh install-a\nx\n", "not closed"},
		{"two blocks", "## Install\n```sh install-a\n```\n```sh install-a\n```\n", "a second block"},
		{"quote", "## Install\n```sh install-a\necho 'x\n```\n", "line 3: unbalanced quote"},
		{"continued", "## Install\n```sh install-a\nx \\\n```\n", "line 3: the block ends inside"},
	} {
		if _, _, err := installBlocks(tc.readme); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.err)
		}
	}
}

func TestSimpleCommands(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want [][]string
		err  string
	}{
		{in: "make build", want: [][]string{{"make", "build"}}},
		{in: "echo hello | gclient submit reverse - --wait", want: [][]string{{"echo", "hello"}, {"gclient", "submit", "reverse", "-", "--wait"}}},
		{in: `a 'x y' "z" && b; c || d & e`, want: [][]string{{"a", "x y", "z"}, {"b"}, {"c"}, {"d"}, {"e"}}},
		{in: "sudo install -m 0755 a /etc/b/", want: [][]string{{"sudo", "install", "-m", "0755", "a", "/etc/b/"}}},
		{in: "echo $(id)", err: `'$'`},
		{in: "echo `id`", err: "'`'"},
		{in: `echo "$HOME"`, err: "inside double quotes"},
		{in: "a > f", err: "'>'"},
		{in: "a |", err: "an empty command"},
		{in: "| a", err: "an empty command"},
		{in: "a 'b", err: "unbalanced"},
	} {
		got, err := simpleCommands(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("simpleCommands(%q) err = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("simpleCommands(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestInRoot(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"sudo install -m 0755 jobs/x /etc/gworkerd/jobs/": "sudo install -m 0755 jobs/x /R/etc/gworkerd/jobs/",
		"/usr/bin/x --config=/etc/y a/b":                  "/R/usr/bin/x --config=/R/etc/y a/b",
		"make build":                                      "make build",
	} {
		if got := inRoot(in, "/R"); got != want {
			t.Errorf("inRoot(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzInstallBlocks: any text is read without a panic, and every command
// read is one trimmed line without its comment.
func FuzzInstallBlocks(f *testing.F) {
	f.Add("## Install\n```sh install-a\nmake build # prints x\n```\n")
	f.Add("## Install\n```sh install-a\na \\\nb 'c # d'\n```\n## B\n")
	f.Fuzz(func(t *testing.T, s string) {
		blocks, _, err := installBlocks(s)
		if err != nil {
			return
		}
		for tag, cmds := range blocks {
			if !strings.HasPrefix(tag, tagPrefix) {
				t.Errorf("tag %q", tag)
			}
			for _, c := range cmds {
				if c.text == "" || c.text != strings.TrimSpace(c.text) || strings.Contains(c.text, "\n") {
					t.Errorf("command %q", c.text)
				}
				_, _ = simpleCommands(c.text)
			}
		}
	})
}
