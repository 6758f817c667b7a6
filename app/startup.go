package app

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// keyedError is a start-up failure whose config key is known where it happened.
type keyedError struct {
	key string
	err error
}

func (e *keyedError) Error() string { return e.err.Error() }
func (e *keyedError) Unwrap() error { return e.err }

// StartupError is why `serve` could not start, in one line: the cause and the config key that
// led to it, with where that key's value came from. It replaces fx's dependency chain, whose
// useful part (the database's own words) came last after several hundred characters.
type StartupError struct {
	Cause  string
	Key    string
	Source string
}

func (e *StartupError) Error() string {
	src := e.Source
	if src == "" {
		src = "default"
	}
	return fmt.Sprintf("cannot start: %s (config key %s, from %s)", e.Cause, e.Key, src)
}

// startupError names the key behind err: the one the failing step marked (keyedError), the
// listen address for a listener error, else the database (every other start-up step opens,
// migrates or reads it).
func startupError(cfg *Config, err error) error {
	var se *StartupError
	if errors.As(err, &se) {
		return err
	}
	key := "db.url"
	var ke *keyedError
	var op *net.OpError
	switch {
	case errors.As(err, &ke):
		key = ke.key
	case errors.As(err, &op) && op.Op == "listen":
		key = "http.addr"
	}
	src := cfg.Sources[key]
	if key == "data.dir" && (src == "" || src == "default") {
		src = "the directory of db.url"
	}
	return &StartupError{Cause: causeOf(err), Key: key, Source: src}
}

// causeOf is the most telling part of err in one line: what PostgreSQL or SQLite said, the
// network or file-system error, else the innermost message.
func causeOf(err error) string {
	var pgErr *pgconn.PgError
	var coded interface{ Code() int }
	var op *net.OpError
	var pathErr *os.PathError
	var msg string
	switch {
	case errors.As(err, &pgErr):
		msg = pgErr.Message + " (SQLSTATE " + pgErr.Code + ")"
	case errors.As(err, &coded):
		msg = coded.(error).Error()
	case errors.As(err, &op):
		msg = op.Error()
	case errors.As(err, &pathErr):
		msg = pathErr.Error()
	default:
		msg = innermost(err).Error()
	}
	return strings.Join(strings.Fields(msg), " ")
}

// innermost follows the first wrapped error down to the last one that still has a message of
// its own (fx's and dig's wrappers only prefix the cause with the dependency chain).
func innermost(err error) error {
	for {
		var next error
		switch w := err.(type) {
		case interface{ Unwrap() error }:
			next = w.Unwrap()
		case interface{ Unwrap() []error }:
			if errs := w.Unwrap(); len(errs) > 0 {
				next = errs[0]
			}
		}
		if next == nil {
			return err
		}
		err = next
	}
}
