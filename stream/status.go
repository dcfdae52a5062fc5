package stream

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Status is reactor's streams and consumer groups at a glance.
type Status struct {
	// Time is when the status was read.
	Time    time.Time    `json:"time"`
	Server  ServerStatus `json:"server"`
	History StreamStatus `json:"history"`
	// Work is the backlog: alerts not yet handled by every group.
	Work StreamStatus `json:"work"`
	DLQ  StreamStatus `json:"dlq"`
	// Groups are the durable consumers on Work, by name.
	Groups []GroupStatus `json:"groups"`
}

// ServerStatus says which server answered. It never holds credentials.
type ServerStatus struct {
	// URL is the URL connected to, without user info; empty for an
	// in-process connection.
	URL     string `json:"url,omitempty"`
	Name    string `json:"name,omitempty"`
	Version string `json:"version,omitempty"`
	Cluster string `json:"cluster,omitempty"`
	// Embedded reports an embedded server in this process, whose store is
	// DataDir.
	Embedded bool   `json:"embedded"`
	DataDir  string `json:"data_dir,omitempty"`
}

// StreamStatus is one stream's size and age.
type StreamStatus struct {
	Name     string `json:"name"`
	Messages uint64 `json:"messages"`
	Bytes    uint64 `json:"bytes"`
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
	// FirstTime and LastTime are when the oldest and newest messages were
	// stored; zero for an empty stream.
	FirstTime time.Time `json:"first_time,omitzero"`
	LastTime  time.Time `json:"last_time,omitzero"`
	// MaxAgeSeconds is how long messages are kept; 0 is forever.
	MaxAgeSeconds float64 `json:"max_age_seconds"`
	// DuplicateWindowSeconds is how long a message id is remembered; the
	// server holds every id of the window in memory. 0 when the stream
	// does not deduplicate.
	DuplicateWindowSeconds float64 `json:"duplicate_window_seconds"`
	Replicas               int     `json:"replicas"`
	// LastMinute and LastHour count the messages stored in the last minute
	// and hour: the inbound rate. Only for the history and DLQ streams.
	LastMinute *uint64 `json:"last_minute,omitempty"`
	LastHour   *uint64 `json:"last_hour,omitempty"`
}

// GroupStatus is one consumer group's progress on Work.
type GroupStatus struct {
	Name           string   `json:"name"`
	FilterSubjects []string `json:"filter_subjects,omitempty"`
	// NumPending counts alerts not yet delivered to the group.
	NumPending uint64 `json:"num_pending"`
	// AckPending counts alerts delivered and not yet settled: in flight,
	// or waiting for a retry.
	AckPending int `json:"ack_pending"`
	// Redelivered counts in-flight alerts delivered more than once.
	Redelivered int `json:"redelivered"`
	// Waiting counts pull requests waiting for alerts: idle workers.
	Waiting int `json:"waiting"`
	// Delivered is the last work-stream sequence delivered, AckFloor the
	// one below which everything is settled.
	Delivered uint64 `json:"delivered_seq"`
	AckFloor  uint64 `json:"ack_floor_seq"`
	// LastActive is when the group last received an alert.
	LastActive     time.Time `json:"last_active,omitzero"`
	AckWaitSeconds float64   `json:"ack_wait_seconds"`
	// Paused reports a group paused by PauseGroup: the server delivers
	// nothing to it until PausedUntil or ResumeGroup.
	Paused      bool      `json:"paused"`
	PausedUntil time.Time `json:"paused_until,omitzero"`
}

// ReadStatus reads the status of t's streams and of every consumer group on
// its work stream. A missing stream is an error wrapping
// jetstream.ErrStreamNotFound. Server is left for the caller (see
// Conn.ServerStatus).
func ReadStatus(ctx context.Context, js jetstream.JetStream, t Topology) (*Status, error) {
	t = t.WithDefaults()
	st := &Status{Time: time.Now().UTC(), Groups: []GroupStatus{}}
	for _, x := range []struct {
		name  string
		into  *StreamStatus
		rates bool
	}{{t.History, &st.History, true}, {t.Work, &st.Work, false}, {t.DLQ, &st.DLQ, true}} {
		s, err := js.Stream(ctx, x.name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, fmt.Errorf("stream %s: %w (run `reactor run` once against this server to create the streams)", x.name, err)
		}
		if err != nil {
			return nil, fmt.Errorf("stream %s: %w", x.name, err)
		}
		*x.into = streamStatus(s.CachedInfo())
		if x.rates {
			x.into.LastMinute = countSince(ctx, js, s.CachedInfo(), st.Time.Add(-time.Minute))
			x.into.LastHour = countSince(ctx, js, s.CachedInfo(), st.Time.Add(-time.Hour))
		}
		if x.name != t.Work {
			continue
		}
		names := s.ConsumerNames(ctx)
		for name := range names.Name() {
			c, err := s.Consumer(ctx, name)
			if err != nil {
				if errors.Is(err, jetstream.ErrConsumerNotFound) {
					continue // deleted meanwhile
				}
				return nil, fmt.Errorf("consumer %s: %w", name, err)
			}
			if c.CachedInfo().Config.Durable == "" {
				continue // an ephemeral reader, not a group
			}
			st.Groups = append(st.Groups, groupStatus(c.CachedInfo()))
		}
		if err := names.Err(); err != nil {
			return nil, fmt.Errorf("consumers of %s: %w", x.name, err)
		}
	}
	slices.SortFunc(st.Groups, func(a, b GroupStatus) int { return cmp.Compare(a.Name, b.Name) })
	return st, nil
}

func streamStatus(info *jetstream.StreamInfo) StreamStatus {
	s := StreamStatus{
		Name:                   info.Config.Name,
		Messages:               info.State.Msgs,
		Bytes:                  info.State.Bytes,
		FirstSeq:               info.State.FirstSeq,
		LastSeq:                info.State.LastSeq,
		MaxAgeSeconds:          info.Config.MaxAge.Seconds(),
		DuplicateWindowSeconds: info.Config.Duplicates.Seconds(),
		Replicas:               info.Config.Replicas,
	}
	if info.State.Msgs > 0 {
		s.FirstTime = info.State.FirstTime.UTC()
		s.LastTime = info.State.LastTime.UTC()
	}
	return s
}

func groupStatus(info *jetstream.ConsumerInfo) GroupStatus {
	g := GroupStatus{
		Name:           info.Name,
		NumPending:     info.NumPending,
		AckPending:     info.NumAckPending,
		Redelivered:    info.NumRedelivered,
		Waiting:        info.NumWaiting,
		Delivered:      info.Delivered.Stream,
		AckFloor:       info.AckFloor.Stream,
		AckWaitSeconds: info.Config.AckWait.Seconds(),
		PausedUntil:    pausedUntil(info),
	}
	g.Paused = !g.PausedUntil.IsZero()
	switch {
	case info.Config.FilterSubject != "":
		g.FilterSubjects = []string{info.Config.FilterSubject}
	case len(info.Config.FilterSubjects) > 0:
		g.FilterSubjects = info.Config.FilterSubjects
	}
	if info.Delivered.Last != nil {
		g.LastActive = info.Delivered.Last.UTC()
	}
	return g
}

// countSince counts the messages a stream stored since a time, by asking the
// server how many a consumer starting there would get. It returns nil if the
// server would not say (a user without permission to create consumers).
func countSince(ctx context.Context, js jetstream.JetStream, info *jetstream.StreamInfo, since time.Time) *uint64 {
	var zero uint64
	if info.State.Msgs == 0 || info.State.LastTime.Before(since) {
		return &zero
	}
	start := since
	c, err := js.CreateConsumer(ctx, info.Config.Name, jetstream.ConsumerConfig{
		DeliverPolicy:     jetstream.DeliverByStartTimePolicy,
		OptStartTime:      &start,
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: 10 * time.Second,
		MemoryStorage:     true,
		Replicas:          1,
	})
	if err != nil {
		return nil
	}
	n := c.CachedInfo().NumPending
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	_ = js.DeleteConsumer(dctx, info.Config.Name, c.CachedInfo().Name)
	return &n
}

// ServerStatus describes the server c is connected to, without credentials.
func (c *Conn) ServerStatus() ServerStatus {
	s := ServerStatus{
		Name:    c.NC.ConnectedServerName(),
		Version: c.NC.ConnectedServerVersion(),
		Cluster: c.NC.ConnectedClusterName(),
	}
	if c.Server != nil {
		s.Embedded = true
		s.DataDir = c.Server.cfg.DataDir
		s.URL = c.Server.ClientURL()
	} else {
		s.URL = redactURL(c.NC.ConnectedUrl())
	}
	return s
}

// RedactURL removes the user info from a comma-separated list of NATS URLs,
// so that they can be printed and logged.
func RedactURL(raw string) string { return redactURL(raw) }
