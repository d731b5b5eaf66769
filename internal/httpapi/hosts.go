package httpapi

import (
	"fmt"
	"net"
	"net/http"
	"strings"
)

// HostCheck guards an endpoint against DNS rebinding: a page on any site
// can rebind its own name to 127.0.0.1 and then call a loopback API as a
// same-origin page, but the browser still sends that name in Host. So
// only these Host values are served:
//
//   - no Host at all (HTTP/1.0 clients; a browser always sends one);
//   - any IP address literal (127.0.0.1, [::1], 10.0.0.5, ...): an
//     address cannot be rebound, and the browser connects to the address
//     the page named, so a wildcard listener is reachable by its addresses;
//   - "localhost" and any name under ".localhost", which resolve to
//     loopback and are not in public DNS;
//   - the host of the configured listen address when it is a name;
//   - the names of the allow-list (case-insensitive, without the port).
//
// The port of Host is ignored, and so is a trailing dot. Every other
// request, whatever its path (also /metrics and /healthz), is refused with
// 421 Misdirected Request and a message naming the host and the setting
// that would allow it.
type HostCheck struct {
	names   map[string]bool
	setting string
}

// NewHostCheck allows the hosts described on HostCheck; listen is the
// configured host:port of the endpoint, allowed the allow-list, and
// setting the flag or config key that sets the allow-list, named in the
// refusal message.
func NewHostCheck(listen string, allowed []string, setting string) *HostCheck {
	c := &HostCheck{names: map[string]bool{}, setting: setting}
	if h, _, err := net.SplitHostPort(listen); err == nil && h != "" {
		c.names[normHost(h)] = true
	}
	for _, a := range allowed {
		c.names[normHost(a)] = true
	}
	return c
}

// Allowed reports whether a request with this Host header value (host or
// host:port) is served.
func (c *HostCheck) Allowed(hostport string) bool {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	h = normHost(h)
	if h == "" || net.ParseIP(h) != nil || h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	return c.names[h]
}

// Handler serves h for the allowed hosts and answers 421 to the others.
func (c *HostCheck) Handler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !c.Allowed(r.Host) {
			WriteError(w, http.StatusMisdirectedRequest, fmt.Sprintf(
				"host %q is not served here (DNS rebinding protection): use an IP address or localhost, or add the name to %s", r.Host, c.setting))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// normHost lower-cases h and drops the brackets of an IPv6 literal and a
// trailing dot.
func normHost(h string) string {
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	return strings.TrimSuffix(strings.ToLower(h), ".")
}
