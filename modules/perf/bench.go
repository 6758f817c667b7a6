package perf

import (
	"errors"
	"io"
)

// BenchMain runs `connsum bench api|browser`.
func BenchMain(args []string, stdout, stderr io.Writer) error {
	return errors.New("bench: not built yet")
}
