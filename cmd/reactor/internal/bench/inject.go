package bench

import (
	"context"
	"errors"
	"time"

	"github.com/reactor-alerts/reactor/processor"
)

// kind is the failure injected for one alert.
type kind uint8

const (
	kindOK        kind = iota
	kindFail           // plain error on the first delivery, then success
	kindPanic          // panic on the first delivery, then success
	kindPermanent      // permanent error on every delivery: dead-lettered
)

// errInjected is the error the synthetic handler fails with.
var errInjected = errors.New("bench: injected failure")

// injector decides deterministically, from a hash of an alert's index, which
// failure it gets, so the expected dead letters are known in advance.
type injector struct {
	seed                      uint64
	permanent, panics, failed float64 // cumulative thresholds in [0, 1]
}

func newInjector(cfg Config) injector {
	return injector{
		seed:      cfg.Seed,
		permanent: cfg.PermanentRate,
		panics:    cfg.PermanentRate + cfg.PanicRate,
		failed:    cfg.PermanentRate + cfg.PanicRate + cfg.FailRate,
	}
}

func (inj injector) kind(i int) kind {
	if inj.failed == 0 {
		return kindOK
	}
	u := float64(splitmix64(inj.seed^uint64(i))>>11) / (1 << 53) // uniform in [0, 1)
	switch {
	case u < inj.permanent:
		return kindPermanent
	case u < inj.panics:
		return kindPanic
	case u < inj.failed:
		return kindFail
	}
	return kindOK
}

// splitmix64 is a fast, well-mixed 64-bit hash.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// synthetic is the bench's handler: it spends work in time.Sleep, then fails
// as the injector says.
type synthetic struct {
	tr   *tracker
	inj  injector
	work time.Duration
}

func (h *synthetic) Process(_ context.Context, m *processor.Message) error {
	if h.work > 0 {
		time.Sleep(h.work)
	}
	i, ok := h.tr.index(m.ID())
	if !ok {
		return nil
	}
	switch h.inj.kind(i) {
	case kindPermanent:
		return processor.Permanent(errInjected)
	case kindPanic:
		if m.Delivered() == 1 {
			panic("bench: injected panic")
		}
	case kindFail:
		if m.Delivered() == 1 {
			return errInjected
		}
	}
	return nil
}
