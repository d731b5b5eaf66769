package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
)

// allowedHosts checks the names of http_allowed_hosts: host names or
// addresses, without a port or a scheme.
func allowedHosts(list []string) ([]string, error) {
	var out []string
	for _, h := range list {
		h = strings.TrimSpace(h)
		switch {
		case h == "":
			return nil, errors.New("empty host name")
		case strings.ContainsAny(h, "/ \t@"):
			return nil, fmt.Errorf("want a host name without scheme or path, got %q", h)
		case strings.Contains(h, ":") && net.ParseIP(strings.Trim(h, "[]")) == nil:
			return nil, fmt.Errorf("want a host name without port, got %q", h)
		}
		out = append(out, h)
	}
	return out, nil
}

// readTokenFile reads the bearer token of http_token_file: the file's
// text without its trailing newline, not empty.
func readTokenFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("cannot read the token file: %w", err)
	}
	tok := strings.TrimRight(string(b), "\r\n")
	if tok == "" {
		return "", fmt.Errorf("token file %s is empty", path)
	}
	return tok, nil
}
