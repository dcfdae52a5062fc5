package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrStoreFull matches (errors.Is) every *StoreFullError: a publish the
// server refused because the store has no room for it.
var ErrStoreFull = errors.New("stream: store full")

// StoreLimit names the limit a full store reached.
type StoreLimit string

// The limits a publish can hit.
const (
	// LimitStream is the stream's own size limit (Topology.MaxBytes, or a
	// message count an operator set), with new messages discarded.
	LimitStream StoreLimit = "stream"
	// LimitAccount is the JetStream storage the server grants the account.
	LimitAccount StoreLimit = "account"
	// LimitServer is the server's JetStream file storage: nats-server
	// takes 75% of the disk's free space at start unless configured.
	LimitServer StoreLimit = "server"
	// LimitDisk is the disk under the server's store, filled by more than
	// JetStream: nats-server answers no publish to a stream whose write
	// failed, until it restarts. Status reports it (StoreStatus.FullOf);
	// a publish only times out.
	LimitDisk StoreLimit = "disk"
)

// StoreFullError is a publish refused because the store is full. It
// matches ErrStoreFull. Nothing was stored; the same publish succeeds once
// room is made (older messages age out or are purged, the limit is raised).
type StoreFullError struct {
	// Limit is the limit reached.
	Limit StoreLimit
	// Reason is the server's own words, e.g. "insufficient resources".
	Reason string
	// Err is the server's answer.
	Err error
}

func (e *StoreFullError) Error() string {
	switch e.Limit {
	case LimitStream:
		return "store full: the stream is at its size limit (" + e.Reason + ")"
	case LimitAccount:
		return "store full: the account's JetStream storage is used up (" + e.Reason + ")"
	}
	return "store full: the server's JetStream file storage is used up (" + e.Reason + ")"
}

// Is reports whether target is ErrStoreFull.
func (e *StoreFullError) Is(target error) bool { return target == ErrStoreFull }

func (e *StoreFullError) Unwrap() error { return e.Err }

// ServerStore is a server's JetStream file storage, used against its limit,
// as the process embedding it answers (see EmbeddedServer).
type ServerStore struct {
	Used  uint64 `json:"used_bytes"`
	Limit uint64 `json:"limit_bytes"`
	// DiskFree is the space left on the data dir's filesystem; nil when
	// unknown.
	DiskFree *uint64 `json:"disk_free_bytes,omitempty"`
	// WriteError is the first stream write error the server reports, such
	// as a full disk's "no space left on device", and WriteErrorStream
	// the stream it is of.
	WriteError       string `json:"write_error,omitempty"`
	WriteErrorStream string `json:"write_error_stream,omitempty"`
}

// EmbeddedServer is what the process that embeds a server says of it, on
// EmbeddedServerSubject: nats-server tells a client its account's storage
// limit (jetstream.AccountInfo) but not its own, which only the system
// account may read, nor whether a process embeds it; the process that
// embeds it reads both in process and answers.
type EmbeddedServer struct {
	// DataDir is the server's store.
	DataDir string `json:"data_dir"`
	// Store is its JetStream file storage.
	Store ServerStore `json:"store"`
}

// EmbeddedServerSubject is where the process embedding the server with the
// given id answers a request with its EmbeddedServer as JSON (package
// stream/embedded does). It holds no credential.
func EmbeddedServerSubject(serverID string) string {
	return "$REACTOR.SERVER." + serverID
}

// embeddedTimeout bounds the wait for the answer of an embedding process;
// a server that none embeds has no responder, and the request fails at
// once.
const embeddedTimeout = time.Second

// askEmbedded asks the process embedding the server nc is connected to
// what it is; nil when no process answers: a server of its own, or one the
// connection may not ask.
func askEmbedded(ctx context.Context, nc *nats.Conn) (*EmbeddedServer, error) {
	id := nc.ConnectedServerId()
	if id == "" {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, embeddedTimeout)
	defer cancel()
	reply, err := nc.RequestWithContext(ctx, EmbeddedServerSubject(id), nil)
	switch {
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("ask the embedding process: %w", err)
	}
	var e EmbeddedServer
	if err := json.Unmarshal(reply.Data, &e); err != nil {
		return nil, fmt.Errorf("ask the embedding process: %w", err)
	}
	return &e, nil
}

// ReadStore reads the account's JetStream file storage and its limit: the
// account's, and the server's when the server is embedded in a reactor
// process (see EmbeddedServer), with its disk. Full is left to
// ReadStatus, which knows the size of the next alert.
func ReadStore(ctx context.Context, js jetstream.JetStream) (StoreStatus, error) {
	info, err := js.AccountInfo(ctx)
	if err != nil {
		return StoreStatus{}, fmt.Errorf("account info: %w", err)
	}
	st := StoreStatus{Used: info.Store}
	if info.Limits.MaxStore > 0 {
		st.Limit, st.LimitOf = uint64(info.Limits.MaxStore), LimitAccount
	}
	e, err := askEmbedded(ctx, js.Conn())
	if err != nil {
		return StoreStatus{}, err
	}
	if e == nil {
		return st, nil
	}
	srv := e.Store
	if srv.Limit > 0 && (st.Limit == 0 || srv.Limit < st.Limit) {
		// The server's own count is the one it enforces against its limit.
		st.Used, st.Limit, st.LimitOf = srv.Used, srv.Limit, LimitServer
	}
	st.DiskFree, st.WriteError, st.WriteErrorStream = srv.DiskFree, srv.WriteError, srv.WriteErrorStream
	return st, nil
}

// CheckRoom sets Full and FullOf for a next message of next bytes: the disk
// of a server that failed to write, or with no room for it, or the limit.
func (s *StoreStatus) CheckRoom(next uint64) {
	switch {
	case s.WriteError != "" || s.DiskFree != nil && *s.DiskFree < next:
		s.Full, s.FullOf = true, LimitDisk
	case s.Limit > 0 && s.Used+next > s.Limit:
		s.Full, s.FullOf = true, s.LimitOf
	}
}

// averageMsg is the average size of the stream's messages as stored, at
// least 1: the room the next one needs, as far as the stream can tell.
func (s StreamStatus) averageMsg() uint64 {
	if s.Messages == 0 {
		return 1
	}
	return max(s.Bytes/s.Messages, 1)
}
