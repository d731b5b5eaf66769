package main

import (
	"fmt"
	"strings"
)

// maxHelp bounds the help text read from one command; a larger text is
// cut there.
const maxHelp = 1 << 20

// manPage builds the roff page of the command name from its --help text,
// fetched through help (called with no argument for the command itself and
// with a subcommand's name for each subcommand its help lists, then for
// each of extra).
func manPage(name, section, summary, source string, extra []string, help func(args ...string) (string, error)) (string, error) {
	top, err := help()
	if err != nil {
		return "", err
	}
	manual := "User Commands"
	if section == "8" {
		manual = "System Administration"
	}
	var b strings.Builder
	fmt.Fprintf(&b, ".TH %s %s \"\" %s %s\n", quote(strings.ToUpper(name)), quote(section), quote(source), quote(manual))
	fmt.Fprintf(&b, ".SH NAME\n%s \\- %s\n", escape(name), escape(summary))
	b.WriteString(".SH DESCRIPTION\n")
	verbatim(&b, top)
	subs := subcommands(top)
	for _, s := range extra {
		if !validName(s) {
			return "", fmt.Errorf("subcommand %q: not a command name", s)
		}
		subs = append(subs, s)
	}
	if len(subs) > 0 {
		b.WriteString(".SH COMMANDS\n")
		for _, s := range subs {
			text, err := help(s)
			if err != nil {
				return "", err
			}
			fmt.Fprintf(&b, ".SS %s\n", quote(name+" "+s))
			verbatim(&b, text)
		}
	}
	return b.String(), nil
}

// subcommands lists the commands of a cobra help text's "Available
// Commands:" section, less cobra's own help and completion.
func subcommands(help string) []string {
	var subs []string
	in := false
	for _, line := range strings.Split(bound(help), "\n") {
		switch {
		case strings.TrimSpace(line) == "Available Commands:":
			in = true
		case !in:
		case !strings.HasPrefix(line, "  "):
			in = false
		default:
			f := strings.Fields(line)
			if len(f) > 0 && f[0] != "help" && f[0] != "completion" && validName(f[0]) {
				subs = append(subs, f[0])
			}
		}
	}
	return subs
}

// validName accepts the names a subcommand may have: letters, digits and
// hyphens, so that a name is safe both as an argument and in roff.
func validName(s string) bool {
	if s == "" || len(s) > 64 || s[0] == '-' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// verbatim writes text as a no-fill block, each line escaped.
func verbatim(b *strings.Builder, text string) {
	b.WriteString(".nf\n")
	for _, line := range strings.Split(strings.TrimRight(bound(text), "\n"), "\n") {
		if strings.TrimSpace(line) == "" {
			b.WriteString("\n")
			continue
		}
		b.WriteString(escape(strings.TrimRight(line, " \t")))
		b.WriteString("\n")
	}
	b.WriteString(".fi\n")
}

// escape makes one line of text literal roff: backslashes and minus signs
// escaped, a leading control character neutralised, control characters
// other than tab dropped.
func escape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\e`)
		case r == '-':
			b.WriteString(`\-`)
		case r == '\t':
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
		default:
			b.WriteRune(r)
		}
	}
	out := b.String()
	if strings.HasPrefix(out, ".") || strings.HasPrefix(out, "'") {
		out = `\&` + out
	}
	return out
}

// quote makes s one roff macro argument.
func quote(s string) string {
	return `"` + strings.ReplaceAll(escape(s), `"`, `\(dq`) + `"`
}

func bound(s string) string {
	if len(s) > maxHelp {
		return s[:maxHelp]
	}
	return s
}
