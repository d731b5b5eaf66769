// Package httpapi holds what gserverd's and gworkerd's HTTP endpoints
// share: JSON answers, bearer-token auth, server-sent event streams and
// the embedded dashboard files.
package httpapi

import (
	"crypto/subtle"
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"strings"
)

// Error is the body of every API error.
type Error struct {
	Error string `json:"error"`
}

// WriteJSON answers code with v as JSON, never cached.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteError answers code with an Error body.
func WriteError(w http.ResponseWriter, code int, msg string) {
	WriteJSON(w, code, Error{Error: msg})
}

// BearerAuth requires "Authorization: Bearer <token>" before h runs, and
// answers 401 otherwise. An empty token turns auth off (h is returned).
func BearerAuth(token, realm string, h http.Handler) http.Handler {
	if token == "" {
		return h
	}
	want := []byte(token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+realm+`"`)
			WriteError(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
		h.ServeHTTP(w, r)
	})
}

//go:embed common
var commonFiles embed.FS

// Static serves the dashboard files of fsys (index.html at /) and, under
// common/, the files both dashboards share (base.css, dash.js), for GET
// and HEAD, with a content security policy that allows nothing from
// elsewhere.
func Static(fsys fs.FS) http.Handler {
	fsrv := http.FileServerFS(withCommon{fsys})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "no-cache")
		fsrv.ServeHTTP(w, r)
	})
}

// Healthz answers 200 "ok".
func Healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

// withCommon is fsys with the shared files under common/.
type withCommon struct{ fs.FS }

func (w withCommon) Open(name string) (fs.File, error) {
	if name == "common" || strings.HasPrefix(name, "common/") {
		return commonFiles.Open(name)
	}
	return w.FS.Open(name)
}
