package bench

import (
	"bufio"
	"bytes"
	"os"
	"runtime/metrics"
	"strconv"
	"sync"
	"time"
)

// heapMetric is the Go heap's live and not yet swept objects.
const heapMetric = "/memory/classes/heap/objects:bytes"

// memSampler tracks the peak resident set and Go heap of this process, which
// includes the embedded server. On Linux the kernel's own high-water mark
// (VmHWM) is reset at the start (writing 5 to /proc/self/clear_refs), so a
// peak shorter than the sampling interval is not missed; VmRSS is sampled as
// well, in case the reset is not permitted. Elsewhere RSS reads as 0.
type memSampler struct {
	stop     chan struct{}
	done     chan struct{}
	hwmReset bool

	mu       sync.Mutex
	peakRSS  uint64
	peakHeap uint64
}

func startMemSampler(every time.Duration) *memSampler {
	s := &memSampler{stop: make(chan struct{}), done: make(chan struct{})}
	s.hwmReset = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
	sample := []metrics.Sample{{Name: heapMetric}}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			s.sample(sample)
			select {
			case <-s.stop:
				s.sample(sample)
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *memSampler) sample(sample []metrics.Sample) {
	metrics.Read(sample)
	var heap uint64
	if sample[0].Value.Kind() == metrics.KindUint64 {
		heap = sample[0].Value.Uint64()
	}
	rss, _ := procStatus("VmRSS:")
	s.mu.Lock()
	s.peakRSS = max(s.peakRSS, rss)
	s.peakHeap = max(s.peakHeap, heap)
	s.mu.Unlock()
}

// Stop ends sampling and returns the peaks in bytes.
func (s *memSampler) Stop() (rss, heap uint64) {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	rss = s.peakRSS
	if s.hwmReset {
		if hwm, ok := procStatus("VmHWM:"); ok {
			rss = max(rss, hwm)
		}
	}
	return rss, s.peakHeap
}

// procStatus reads a "kB" field of /proc/self/status, in bytes.
func procStatus(field string) (uint64, bool) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasPrefix(line, []byte(field)) {
			continue
		}
		fields := bytes.Fields(line[len(field):])
		if len(fields) == 0 {
			return 0, false
		}
		kb, err := strconv.ParseUint(string(fields[0]), 10, 64)
		if err != nil {
			return 0, false
		}
		return kb << 10, true
	}
	return 0, false
}
