package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Recover turns a handler panic into a *PanicError carrying the stack, so the
// message is retried and finally dead-lettered with it. The processor recovers
// panics by itself too; Recover is for handlers used outside it (replay, tests)
// and for middleware stacks that must see the error.
func Recover() Middleware {
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, m *Message) (err error) {
			defer func() {
				if v := recover(); v != nil {
					err = newPanicError(v)
				}
			}()
			return next.Process(ctx, m)
		})
	}
}

// Timeout cancels the handler's context after d. A handler that returns
// because of it yields an error wrapping context.DeadlineExceeded, which is
// retried like any other error.
func Timeout(d time.Duration) Middleware {
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, m *Message) error {
			ctx, cancel := context.WithTimeoutCause(ctx, d, fmt.Errorf("handler timeout %s: %w", d, context.DeadlineExceeded))
			defer cancel()
			err := next.Process(ctx, m)
			if err != nil && ctx.Err() != nil {
				if cause := context.Cause(ctx); !errors.Is(err, cause) {
					err = fmt.Errorf("%w: %w", cause, err)
				}
			}
			return err
		})
	}
}

// Logging logs every handler call at debug level, and failures at warn, with
// subject, seq, delivered, duration and err, and a panic's stack.
func Logging(logger *slog.Logger) Middleware {
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, m *Message) error {
			start := time.Now()
			err := next.Process(ctx, m)
			level := slog.LevelDebug
			if err != nil {
				level = slog.LevelWarn
			}
			if logger.Enabled(ctx, level) {
				attrs := []slog.Attr{
					slog.String("subject", m.Subject()),
					slog.Uint64("seq", m.Sequence()),
					slog.Int("delivered", m.Delivered()),
					slog.Duration("duration", time.Since(start)),
					slog.Any("err", err),
				}
				if a, ok := stackAttr(err); ok {
					attrs = append(attrs, a)
				}
				logger.LogAttrs(ctx, level, "handler done", attrs...)
			}
			return err
		})
	}
}
