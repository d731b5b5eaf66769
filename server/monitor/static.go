package monitor

import "embed"

// staticFiles is the dashboard: static/index.html is served at /.
//
//go:embed static
var staticFiles embed.FS
