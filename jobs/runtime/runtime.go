// Package runtime holds the language runtimes gworkerd ships for resident
// handlers, embedded in the binary: gworkerd.php (php-cli, with or without
// the gearman extension) and gworkerd.py (Python 3, standard library only).
//
// Each loads a job file once and then serves job after job over the
// resident protocol, version 1, described in jobs/README.md ("Resident
// handlers"): requests on file descriptor 3, replies on file descriptor 4.
// gworkerd writes these scripts to a private directory and runs them as
//
//	php gworkerd.php --file PATH --callable NAME [--function GEARMAN_NAME]
//	python3 gworkerd.py --file PATH --callable NAME [--function GEARMAN_NAME]
//
// The conformance test that drives both over real pipes is
// jobs/runtime_test.go.
package runtime

import _ "embed"

// File names the scripts are written under; the interpreters do not
// care, but the names show up in process listings and in the scripts'
// own error messages.
const (
	PHPFile    = "gworkerd.php"
	PythonFile = "gworkerd.py"
)

// The scripts' text. Strings, so that nothing outside can change them:
// PHP and Python hand out copies.
var (
	//go:embed gworkerd.php
	phpScript string

	//go:embed gworkerd.py
	pythonScript string
)

// PHP returns the PHP runtime, gworkerd.php. Each call returns a new copy.
func PHP() []byte { return []byte(phpScript) }

// Python returns the Python runtime, gworkerd.py. Each call returns a new
// copy.
func Python() []byte { return []byte(pythonScript) }
