package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/gworkerd/gworkerd/config/migrate"
)

// importCmd is `gworkerd import FORMAT FILE`: the configuration of the
// worker manager gworkerd replaces, written as gworkerd's YAML. The YAML
// goes to standard output (or -o FILE), the keys that could not be
// mapped and the notes to standard error.
func importCmd(_ *globalFlags) *cobra.Command {
	var (
		output string
		force  bool
	)
	cmd := &cobra.Command{
		Use:   "import FORMAT FILE",
		Short: "convert a GearmanManager or supervisord configuration to gworkerd's YAML",
		Long: `Convert the configuration of another worker manager to gworkerd's YAML.

The YAML goes to standard output, or to -o FILE (an existing file is kept
unless --force). Every key that has no gworkerd equivalent is listed on
standard error with the reason, "FILE:LINE: key: not mapped: reason", and
so are the notes on mappings that change behaviour; the YAML starts with
the same list as comments. A file that cannot be read in its format is an
error naming FILE:LINE.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return errors.New("import: name the format: gearmanmanager or supervisord")
			}
			return fmt.Errorf("import: unknown format %q: want gearmanmanager or supervisord", args[0])
		},
	}
	cmd.PersistentFlags().StringVarP(&output, "output", "o", "", "write the YAML to this file instead of standard output")
	cmd.PersistentFlags().BoolVar(&force, "force", false, "overwrite the -o file when it exists")
	for _, f := range []struct {
		use, short string
		convert    func([]byte, migrate.Options) (*migrate.Result, error)
	}{
		{"gearmanmanager FILE", "a GearmanManager config (FILE.ini or FILE.php, the -c file of pecl-manager.php)", migrate.GearmanManager},
		{"supervisord FILE", "a supervisord config file: each [program:x] becomes a function x running its command", migrate.Supervisord},
	} {
		convert := f.convert
		cmd.AddCommand(&cobra.Command{
			Use:   f.use,
			Short: f.short,
			Args:  cobra.ExactArgs(1),
			RunE: func(c *cobra.Command, args []string) error {
				return runImport(c, convert, args[0], output, force)
			},
		})
	}
	return cmd
}

func runImport(cmd *cobra.Command, convert func([]byte, migrate.Options) (*migrate.Result, error), file, output string, force bool) error {
	data, err := readBounded(file)
	if err != nil {
		return err
	}
	dir, err := filepath.Abs(filepath.Dir(file))
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	res, err := convert(data, migrate.Options{Name: file, Dir: dir, LookupEnv: os.LookupEnv, Hostname: host})
	if err != nil {
		return err
	}
	y, err := res.YAML()
	if err != nil {
		return err
	}
	if output == "" {
		if _, err := cmd.OutOrStdout().Write(y); err != nil {
			return err
		}
	} else if err := writeOutput(output, y, force); err != nil {
		return err
	}
	fmt.Fprint(cmd.ErrOrStderr(), res.Report())
	if output != "" {
		fmt.Fprintf(cmd.ErrOrStderr(), "%s: written: %d keys not mapped, %d notes\n", output, len(res.Unmapped), len(res.Notes))
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
