package cli

import (
	"os"
	"testing"

	"github.com/gworkerd/gworkerd/internal/testpeer"
)

func TestMain(m *testing.M) { os.Exit(testpeer.Main(m)) }
