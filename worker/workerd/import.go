package workerd

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/gworkerd/gworkerd/config/migrate"
)

// ImportFormat is a worker manager whose configuration Import reads.
type ImportFormat struct {
	Name        string // the command's word: "gearmanmanager"
	Description string // what FILE is
	Convert     func([]byte, migrate.Options) (*migrate.Result, error)
}

// ImportFormats are the formats Import reads.
func ImportFormats() []ImportFormat {
	return []ImportFormat{
		{"gearmanmanager", "a GearmanManager config (FILE.ini or FILE.php, the -c file of pecl-manager.php)", migrate.GearmanManager},
		{"supervisord", "a supervisord config file: each [program:x] becomes a function x running its command", migrate.Supervisord},
	}
}

// ImportOptions are the inputs of Import.
type ImportOptions struct {
	// Convert reads the other manager's format (migrate.GearmanManager,
	// migrate.Supervisord).
	Convert func([]byte, migrate.Options) (*migrate.Result, error)
	File    string
	// Output is the file the YAML goes to; "" for Stdout. An existing
	// file is kept unless Force.
	Output string
	Force  bool
	// LookupEnv and Hostname are the ones the imported file's
	// references are expanded with.
	LookupEnv func(string) (string, bool)
	Hostname  string
	// Stdout gets the YAML (without Output); Stderr the keys that could
	// not be mapped and the notes.
	Stdout, Stderr io.Writer
}

// Import writes the configuration of the worker manager gworkerd
// replaces as gworkerd's YAML. A file that cannot be read in its format
// is an error naming FILE:LINE.
func Import(o ImportOptions) error {
	data, err := readBounded(o.File)
	if err != nil {
		return err
	}
	dir, err := filepath.Abs(filepath.Dir(o.File))
	if err != nil {
		return err
	}
	res, err := o.Convert(data, migrate.Options{Name: o.File, Dir: dir, LookupEnv: o.LookupEnv, Hostname: o.Hostname})
	if err != nil {
		return err
	}
	y, err := res.YAML()
	if err != nil {
		return err
	}
	if o.Output == "" {
		if _, err := o.Stdout.Write(y); err != nil {
			return err
		}
	} else if err := writeOutput(o.Output, y, o.Force); err != nil {
		return err
	}
	fmt.Fprint(o.Stderr, res.Report())
	if o.Output != "" {
		fmt.Fprintf(o.Stderr, "%s: written: %d keys not mapped, %d notes\n", o.Output, len(res.Unmapped), len(res.Notes))
	}
	return nil
}

// readBounded reads file, or its first MaxFileSize+1 bytes: enough for
// the import to refuse a larger one without reading all of it.
func readBounded(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", file)
	}
	return io.ReadAll(io.LimitReader(f, migrate.MaxFileSize+1))
}

// writeOutput writes the YAML to path: a new file, or with force a
// replacement (written beside it, then renamed over it).
func writeOutput(path string, y []byte, force bool) error {
	if !force {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s exists: not overwritten (use --force)", path)
		}
		if err != nil {
			return err
		}
		if _, err := f.Write(y); err != nil {
			f.Close()
			os.Remove(path)
			return err
		}
		return f.Close()
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after the rename, there is nothing to remove
	if _, err := tmp.Write(y); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
