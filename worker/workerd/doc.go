// Package workerd is gworkerd as a library: everything the gworkerd
// command does besides parsing its command line and subscribing signals.
//
// The master (Start) loads the config, resolves the functions it serves
// (built-in handlers, executables job_<name> found in the job
// directories, resident PHP and Python handlers, worker programs given by
// command), supervises one child process per worker slot, serves the
// control socket and the HTTP endpoint, and reloads on request, rejecting
// a reload that changes a setting fixed at start. It runs in the
// foreground or as a daemon re-executed behind a locked pid file, which
// reports to the starting process whether it serves.
//
// A child (Child) is the gworkerd binary run again by the master, with
// its settings in the environment: it serves one function with the
// worker package and reports its jobs and memory to the master.
//
// Stop, Reload, Control and Check are the operator's commands; Import
// converts another worker manager's configuration.
//
// workerd is the application layer of gworkerd, not part of the worker
// library: it wires worker, worker/supervise and jobs together (jobs
// builds on worker; nothing in worker, supervise or jobs imports workerd).
package workerd
