package processor

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"
)

// ErrDrop, returned by a handler, acknowledges the message without
// dead-lettering it: the alert is deliberately ignored.
var ErrDrop = errors.New("processor: drop message")

// ErrNoHandler is the reason given when no registered pattern matches a
// message's subject. Such messages are dead-lettered, never dropped.
var ErrNoHandler = errors.New("processor: no handler")

// ErrMaxDeliveries is the reason given for a message that came back more
// often than MaxDeliver without its handler reaching an outcome.
var ErrMaxDeliveries = errors.New("processor: too many deliveries")

// RetryError asks for redelivery after a given delay. Build it with Retry.
type RetryError struct {
	After time.Duration
	Err   error
}

// Retry returns an error that naks the message with delay after. On the last
// allowed delivery it dead-letters like any other error.
func Retry(after time.Duration, err error) error {
	return &RetryError{After: after, Err: err}
}

func (e *RetryError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("retry after %s", e.After)
	}
	return fmt.Sprintf("retry after %s: %v", e.After, e.Err)
}

func (e *RetryError) Unwrap() error { return e.Err }

// PermanentError marks a failure that no retry can fix (malformed input, a
// 4xx answer). Build it with Permanent.
type PermanentError struct {
	Err error
}

// Permanent returns an error that dead-letters the message at once.
// Permanent(nil) returns nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

func (e *PermanentError) Error() string { return "permanent: " + e.Err.Error() }

func (e *PermanentError) Unwrap() error { return e.Err }

// PanicError is a recovered handler panic. It is handled like a plain error:
// retried, then dead-lettered. Error() is the panic value alone, one line for
// logs and reasons; the stack goes apart, as the "stack" attribute of the
// outcome's log line and after the error in the dead letter.
type PanicError struct {
	Value any
	// Stack is the panicking goroutine's stack, as debug.Stack formats it.
	Stack []byte
}

func newPanicError(v any) *PanicError {
	return &PanicError{Value: v, Stack: debug.Stack()}
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("panic: %v", e.Value)
}

// stackAttr is the "stack" log attribute of err's panic, if err is one.
func stackAttr(err error) (slog.Attr, bool) {
	pe, ok := errors.AsType[*PanicError](err)
	if !ok {
		return slog.Attr{}, false
	}
	return slog.String("stack", string(pe.Stack)), true
}

// errorDetail is err's text for a dead letter: Error(), then the stack when
// err is a panic, so the dead letter says where it happened.
func errorDetail(err error) string {
	if pe, ok := errors.AsType[*PanicError](err); ok {
		return err.Error() + "\n" + string(pe.Stack)
	}
	return err.Error()
}
