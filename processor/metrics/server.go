package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler serves /metrics, /healthz (the process is up) and /readyz (ready()
// holds: connected and bound to the consumer).
func Handler(m *Metrics, ready func() bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if ready == nil || !ready() {
			http.Error(w, "not ready: not bound to the consumer", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	return mux
}

// Listen opens the metrics listener on addr ("127.0.0.1:9464"; port 0 picks
// a free one). Serve it with Serve.
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen on %s: %w", addr, err)
	}
	return ln, nil
}

// Timeouts of the metrics listener.
const (
	// readHeaderTimeout bounds how long a client may take to send a
	// request's headers, so that idle connections cannot pile up.
	readHeaderTimeout = 5 * time.Second
	// shutdownTimeout bounds the wait for scrapes in flight when Serve's
	// context is cancelled; the rest are cut off.
	shutdownTimeout = 5 * time.Second
)

// Serve serves Handler on ln until ctx is cancelled, then shuts down.
func Serve(ctx context.Context, ln net.Listener, m *Metrics, ready func() bool) error {
	srv := &http.Server{Handler: Handler(m, ready), ReadHeaderTimeout: readHeaderTimeout}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("metrics: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}
