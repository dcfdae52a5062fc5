package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"
)

// Exit codes scripts can rely on; the README lists them.
const (
	exitOK          = 0
	exitFailure     = 1   // the command failed
	exitUsage       = 2   // unknown flag or command, bad value, missing argument
	exitPartial     = 3   // some items failed, the others were done
	exitInterrupted = 130 // stopped by a signal (a second Ctrl-C in run)
)

// exitError is an error with its exit code and, optionally, a hint that says
// what to do about it.
type exitError struct {
	code int
	err  error
	hint string
}

func (e *exitError) Error() string {
	if e.hint == "" {
		return e.err.Error()
	}
	return e.err.Error() + ": " + e.hint
}

func (e *exitError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

func withHint(err error, hint string) error {
	return &exitError{code: exitFailure, err: err, hint: hint}
}

// partialError reports that n items of a batch failed; each was reported
// already.
func partialError(format string, args ...any) error {
	return &exitError{code: exitPartial, err: fmt.Errorf(format, args...)}
}

// report prints err as one line on w, "reactor: ..." with a hint where one
// helps, and returns the exit code.
func report(w io.Writer, err error) int {
	if err == nil {
		return exitOK
	}
	code := exitFailure
	var ee *exitError
	var ec cli.ExitCoder
	switch {
	case errors.As(err, &ee):
		code = ee.code
	case errors.As(err, &ec):
		code = ec.ExitCode()
		if code == exitOK {
			return exitOK
		}
	case errors.Is(err, context.Canceled):
		code = exitInterrupted
		err = errors.New("interrupted")
	}
	msg := strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", " ; ")), " ")
	if msg == "" {
		return code
	}
	if !strings.HasPrefix(msg, "reactor") {
		msg = "reactor: " + msg
	}
	fmt.Fprintln(w, msg)
	return code
}
