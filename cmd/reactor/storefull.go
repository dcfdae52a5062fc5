package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/reactor-alerts/reactor/stream"
)

// What send, send --file and status say of a full store: which limit, what
// to do, and what was not stored.

// storeFullHint says what to do about a full store, by the limit reached.
func storeFullHint(limit stream.StoreLimit) string {
	const older = "keep alerts for less time (reactor run --history-max-age), or purge old alerts or dead letters (reactor dlq purge --all)"
	switch limit {
	case stream.LimitStream:
		return "raise the alert stream's size limit (reactor run --max-bytes), " + older
	case stream.LimitAccount:
		return "raise the account's JetStream storage limit (max_file in the server's account config), " + older
	case stream.LimitDisk:
		return "free disk space where the server keeps its data, then restart it (nats-server stores nothing more in a stream whose write failed until it restarts); keep the data dir on a filesystem of its own"
	}
	return "free disk space where the server keeps its data and restart it (nats-server takes 75% of the free space when it starts), " + older
}

// storeFullError explains a publish refused by a full store, with what to do;
// nil when err is another error.
func storeFullError(err error) error {
	var full *stream.StoreFullError
	if !errors.As(err, &full) {
		return nil
	}
	return withHint(full, storeFullHint(full.Limit))
}

// diskFull returns an error saying what to do when the disk under the
// server's store is full: its write to the alert stream failed, and
// nats-server answers no publish to that stream until it restarts. nil
// otherwise, or when the server does not say (only an embedded one does).
func diskFull(ctx context.Context, conn *stream.Conn, alerts string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stream.RequestTimeoutDefault)
	defer cancel()
	st, err := stream.ReadStore(ctx, conn.JS)
	if err != nil || st.WriteErrorStream != alerts {
		return nil
	}
	return withHint(fmt.Errorf("the disk under the server's store is full: %s", st.WriteError), storeFullHint(stream.LimitDisk))
}

// unansweredFull is diskFull for a publish that failed unanswered (a full
// disk's publishes time out); nil for any other failure.
func unansweredFull(ctx context.Context, conn *stream.Conn, alerts string, err error) error {
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, stream.ErrStoreFull) {
		return nil
	}
	return diskFull(ctx, conn, alerts)
}

// storeFullStop says where send --file stopped for a full store, and what
// was not stored: the refused lines (the batch in flight when the store
// filled up), and every line from NotSentFrom on, never read.
type storeFullStop struct {
	Line int `json:"line"`
	// Disk reports the disk under the store full, not a limit reached.
	Disk    bool        `json:"disk,omitempty"`
	Refused []lineRange `json:"refused"`
	// NotSentFrom is the first line not sent; 0 when the refused lines
	// were the file's last.
	NotSentFrom int `json:"not_sent_from,omitempty"`
}

// lineRange is lines From to To, both included.
type lineRange struct {
	From int `json:"from"`
	To   int `json:"to"`
}

func (s *storeFullStop) refuse(line int) {
	if n := len(s.Refused); n > 0 && s.Refused[n-1].To == line-1 {
		s.Refused[n-1].To = line
		return
	}
	s.Refused = append(s.Refused, lineRange{From: line, To: line})
}

func (s *storeFullStop) String() string {
	parts := make([]string, 0, len(s.Refused)+1)
	for _, r := range s.Refused {
		if r.From == r.To {
			parts = append(parts, fmt.Sprintf("line %d refused", r.From))
		} else {
			parts = append(parts, fmt.Sprintf("lines %d-%d refused", r.From, r.To))
		}
	}
	if s.NotSentFrom > 0 {
		parts = append(parts, fmt.Sprintf("lines from %d not sent", s.NotSentFrom))
	}
	what := "the store"
	if s.Disk {
		what = "the disk under the store"
	}
	return fmt.Sprintf("stopped at line %d, %s being full: %s", s.Line, what, strings.Join(parts, ", "))
}
