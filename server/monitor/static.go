package monitor

import (
	"embed"
	"io/fs"
	"net/http"

	"github.com/gworkerd/gworkerd/internal/httpapi"
)

//go:embed static
var staticFiles embed.FS

// staticHandler serves the embedded dashboard: / is static/index.html.
func staticHandler() http.Handler {
	sub, err := fs.Sub(staticFiles, "static")
	if err != nil {
		panic(err) // the embedded tree always has static/
	}
	return httpapi.Static(sub)
}
