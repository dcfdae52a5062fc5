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
	Time   time.Time    `json:"time"`
	Server ServerStatus `json:"server"`
	// Alerts is the alert stream: every alert, once.
	Alerts StreamStatus `json:"alerts"`
	DLQ    StreamStatus `json:"dlq"`
	// Store is the JetStream file storage the streams share.
	Store StoreStatus `json:"store"`
	// Groups are the durable consumers on Alerts, by name.
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
	// Embedded reports a server embedded in a reactor process (this one,
	// or the one that answered for it, see EmbeddedServer), whose
	// store is DataDir.
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
	// MaxBytes is the stream's size limit; 0 is none.
	MaxBytes uint64 `json:"max_bytes,omitempty"`
	// Full reports a stream at MaxBytes that discards new messages: the
	// next message of the stream's average size does not fit, and
	// publishers get ErrStoreFull.
	Full bool `json:"full"`
	// LastMinute and LastHour count the messages stored in the last minute
	// and hour: the inbound rate.
	LastMinute *uint64 `json:"last_minute,omitempty"`
	LastHour   *uint64 `json:"last_hour,omitempty"`
}

// StoreStatus is the JetStream file storage of the account, used against its
// limit.
type StoreStatus struct {
	// Used is what the account's file streams take, reactor's and any
	// other, as the server counts it.
	Used uint64 `json:"used_bytes"`
	// Limit is the most they may take: the smaller of the account's limit
	// and the server's when they are known; 0 when the server does not
	// say. An embedded server says its own (see EmbeddedServer);
	// another server tells a client only its account's limit.
	Limit uint64 `json:"limit_bytes,omitempty"`
	// LimitOf says whose limit Limit is: LimitAccount or LimitServer.
	LimitOf StoreLimit `json:"limit_of,omitempty"`
	// DiskFree is the space left on the filesystem of an embedded
	// server's data dir; nil when unknown.
	DiskFree *uint64 `json:"disk_free_bytes,omitempty"`
	// WriteError is a stream write error an embedded server reports, such
	// as a full disk's "no space left on device", and WriteErrorStream the
	// stream it is of: nats-server stores nothing more in that stream, and
	// answers no publish to it, until it restarts.
	WriteError       string `json:"write_error,omitempty"`
	WriteErrorStream string `json:"write_error_stream,omitempty"`
	// Full reports that the next alert of the alert stream's average size
	// does not fit, and FullOf what is full: LimitServer or LimitAccount
	// (publishers get ErrStoreFull), or LimitDisk (a disk filled by more
	// than JetStream: publishes go unanswered).
	Full   bool       `json:"full"`
	FullOf StoreLimit `json:"full_of,omitempty"`
}

// GroupStatus is one consumer group's progress on Alerts.
type GroupStatus struct {
	Name string `json:"name"`
	// FilterSubjects are the alert subjects the group handles; empty for
	// all of them. The group's redrive subject is not listed.
	FilterSubjects []string `json:"filter_subjects,omitempty"`
	// Start is where the group started when it was created: all, new, a
	// time or seq:N, and why when it was chosen for it.
	Start string `json:"start"`
	// Backlog counts the alerts the group has not settled: NumPending plus
	// AckPending.
	Backlog uint64 `json:"backlog"`
	// OldestUnsettled is when the oldest alert the group has not settled
	// was stored; zero when the backlog is empty. Past the stream's max
	// age, alerts leave the stream whether settled or not.
	OldestUnsettled time.Time `json:"oldest_unsettled,omitzero"`
	// OldestUnsettledSeq is that alert's stream sequence.
	OldestUnsettledSeq uint64 `json:"oldest_unsettled_seq,omitempty"`
	// NumPending counts alerts not yet delivered to the group.
	NumPending uint64 `json:"num_pending"`
	// AckPending counts alerts delivered and not yet settled: in flight,
	// or waiting for a retry.
	AckPending int `json:"ack_pending"`
	// Redelivered counts in-flight alerts delivered more than once.
	Redelivered int `json:"redelivered"`
	// Waiting counts pull requests waiting for alerts: idle workers.
	Waiting int `json:"waiting"`
	// Delivered is the last stream sequence delivered, AckFloor the one
	// at and below which everything is settled.
	Delivered uint64 `json:"delivered_seq"`
	AckFloor  uint64 `json:"ack_floor_seq"`
	// LastActive is when the group last received an alert. A restarted
	// server has forgotten it: then it is when the last alert the group
	// received was stored, and LastActiveApprox is set (the group was
	// active then or later).
	LastActive       time.Time `json:"last_active,omitzero"`
	LastActiveApprox bool      `json:"last_active_approx,omitempty"`
	AckWaitSeconds   float64   `json:"ack_wait_seconds"`
	// Paused reports a group paused by PauseGroup: the server delivers
	// nothing to it until PausedUntil or ResumeGroup.
	Paused      bool      `json:"paused"`
	PausedUntil time.Time `json:"paused_until,omitzero"`
}

// ReadStatus reads the status of t's streams and of every consumer group on
// its alert stream. A missing stream is an error wrapping
// jetstream.ErrStreamNotFound. Server is left for the caller (see
// Conn.ServerStatus).
func ReadStatus(ctx context.Context, js jetstream.JetStream, t Topology) (*Status, error) {
	t = t.WithDefaults()
	st := &Status{Time: time.Now().UTC(), Groups: []GroupStatus{}}
	var alerts jetstream.Stream
	for _, x := range []struct {
		name string
		into *StreamStatus
	}{{t.Alerts, &st.Alerts}, {t.DLQ, &st.DLQ}} {
		s, err := js.Stream(ctx, x.name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, fmt.Errorf("stream %s: %w (run `reactor run` once against this server to create the streams)", x.name, err)
		}
		if err != nil {
			return nil, fmt.Errorf("stream %s: %w", x.name, err)
		}
		*x.into = streamStatus(s.CachedInfo())
		x.into.LastMinute = countSince(ctx, js, s.CachedInfo(), st.Time.Add(-time.Minute))
		x.into.LastHour = countSince(ctx, js, s.CachedInfo(), st.Time.Add(-time.Hour))
		if x.name == t.Alerts {
			alerts = s
		}
	}
	store, err := ReadStore(ctx, js)
	if err != nil {
		return nil, err
	}
	store.CheckRoom(st.Alerts.averageMsg())
	st.Store = store
	infos := alerts.ListConsumers(ctx)
	for info := range infos.Info() {
		if info.Config.Durable == "" {
			continue // a reader (replay, status), not a group
		}
		g, err := groupStatus(ctx, t, alerts, info)
		if err != nil {
			return nil, err
		}
		st.Groups = append(st.Groups, g)
	}
	if err := infos.Err(); err != nil {
		return nil, fmt.Errorf("consumers of %s: %w", t.Alerts, err)
	}
	slices.SortFunc(st.Groups, func(a, b GroupStatus) int { return cmp.Compare(a.Name, b.Name) })
	return st, nil
}

// ReadGroup reads the status of one consumer group on t's alert stream. A
// missing group is an error wrapping ErrGroupNotFound.
func ReadGroup(ctx context.Context, js jetstream.JetStream, t Topology, group string) (GroupStatus, error) {
	t = t.WithDefaults()
	s, err := js.Stream(ctx, t.Alerts)
	if err != nil {
		return GroupStatus{}, fmt.Errorf("stream %s: %w", t.Alerts, err)
	}
	c, err := s.Consumer(ctx, group)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return GroupStatus{}, fmt.Errorf("%w: %q on %s", ErrGroupNotFound, group, t.Alerts)
	}
	if err != nil {
		return GroupStatus{}, fmt.Errorf("group %q: %w", group, err)
	}
	return groupStatus(ctx, t, s, c.CachedInfo())
}

// GroupSubjects are the alert subjects the group whose consumer on t's
// Alerts stream is info filters, its redrive subject left out; nil when it
// takes every alert subject (a consumer of the whole stream, or one made
// before those were: it filtered the alert subjects and its redrive
// subject).
func GroupSubjects(t Topology, info *jetstream.ConsumerInfo) []string {
	t = t.WithDefaults()
	filters := info.Config.FilterSubjects
	if info.Config.FilterSubject != "" {
		filters = []string{info.Config.FilterSubject}
	}
	redrive := t.redriveFilter(info.Name) + ".>"
	own := slices.DeleteFunc(slices.Clone(filters), func(f string) bool { return f == redrive })
	if len(own) == 0 || slices.Equal(own, t.Subjects) {
		return nil
	}
	return own
}

// oldestUnsettled returns the stream sequence and storage time of the oldest
// alert a group has not settled: the first alert past its ack floor that its
// filters match. It returns 0 and a zero time when there is none.
func oldestUnsettled(ctx context.Context, t Topology, s jetstream.Stream, info *jetstream.ConsumerInfo) (uint64, time.Time, error) {
	filters := GroupSubjects(t, info)
	if filters == nil {
		filters = t.Subjects
	}
	// Not another group's redrives, which a group of every subject
	// delivers and leaves.
	filters = append(slices.Clone(filters), t.redriveFilter(info.Name)+".>")
	var seq uint64
	var at time.Time
	for _, f := range filters {
		m, err := s.GetMsg(ctx, info.AckFloor.Stream+1, jetstream.WithGetMsgSubject(f))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return 0, time.Time{}, fmt.Errorf("oldest unsettled alert of %s: %w", info.Name, err)
		}
		if seq == 0 || m.Sequence < seq {
			seq, at = m.Sequence, m.Time.UTC()
		}
	}
	return seq, at, nil
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
	if info.Config.MaxBytes > 0 {
		s.MaxBytes = uint64(info.Config.MaxBytes)
		s.Full = info.Config.Discard == jetstream.DiscardNew && s.Bytes+s.averageMsg() > s.MaxBytes
	}
	if info.State.Msgs > 0 {
		s.FirstTime = info.State.FirstTime.UTC()
		s.LastTime = info.State.LastTime.UTC()
	}
	return s
}

// groupStatus is the status of the group whose consumer on alerts is info.
func groupStatus(ctx context.Context, t Topology, alerts jetstream.Stream, info *jetstream.ConsumerInfo) (GroupStatus, error) {
	g := GroupStatus{
		Name:           info.Name,
		Start:          startOf(info.Config),
		Backlog:        info.NumPending + uint64(max(info.NumAckPending, 0)),
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
	g.FilterSubjects = GroupSubjects(t, info)
	if info.Delivered.Last != nil {
		g.LastActive = info.Delivered.Last.UTC()
	}
	if g.LastActive.IsZero() && g.Delivered > 0 {
		// A restarted server forgets when it last delivered: the last
		// delivered alert was stored then or before.
		if m, err := alerts.GetMsg(ctx, g.Delivered); err == nil {
			g.LastActive, g.LastActiveApprox = m.Time.UTC(), true
		}
	}
	if g.Backlog > 0 {
		seq, at, err := oldestUnsettled(ctx, t, alerts, info)
		if err != nil {
			return g, err
		}
		g.OldestUnsettledSeq, g.OldestUnsettled = seq, at
	}
	return g, nil
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

// embeddedServer is what ServerStatus reports of an in-process server, as
// *embedded.Server has it.
type embeddedServer interface {
	DataDir() string
	ClientURL() string
}

// ServerStatus describes the server c is connected to, without credentials.
// A server in another process is asked whether a reactor process embeds it
// (see EmbeddedServer), for up to a second.
func (c *Conn) ServerStatus() ServerStatus {
	s := ServerStatus{
		Name:    c.NC.ConnectedServerName(),
		Version: c.NC.ConnectedServerVersion(),
		Cluster: c.NC.ConnectedClusterName(),
	}
	if srv, ok := c.InProcess.(embeddedServer); ok {
		s.Embedded = true
		s.DataDir = srv.DataDir()
		s.URL = srv.ClientURL()
		return s
	}
	s.URL = redactURL(c.NC.ConnectedUrl())
	if e, err := askEmbedded(context.Background(), c.NC); err == nil && e != nil {
		s.Embedded, s.DataDir = true, e.DataDir
	}
	return s
}
