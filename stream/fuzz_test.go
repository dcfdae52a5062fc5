package stream_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// FuzzDecodeAlert: any payload either decodes to a valid alert that survives
// a JSON round trip unchanged, or fails with ErrInvalidAlert.
// Seeds: testdata/alerts.
func FuzzDecodeAlert(f *testing.F) {
	streamtest.SeedFiles(f, "../testdata/alerts/good/*")
	streamtest.SeedFiles(f, "../testdata/alerts/bad/*")
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := stream.DecodeAlert("alerts.fuzz", data)
		if err != nil {
			if !errors.Is(err, stream.ErrInvalidAlert) {
				t.Fatalf("error %v is not an ErrInvalidAlert", err)
			}
			return
		}
		if err := a.Validate(); err != nil {
			t.Fatalf("decoded alert does not validate: %v (%+v)", err, a)
		}
		enc, err := json.Marshal(a)
		if err != nil {
			t.Fatalf("marshal %+v: %v", a, err)
		}
		again, err := stream.DecodeAlert("alerts.fuzz", enc)
		if err != nil {
			t.Fatalf("re-decoding %s: %v", enc, err)
		}
		if !reflect.DeepEqual(normalizeTime(a), normalizeTime(again)) {
			t.Fatalf("round trip changed the alert:\n%+v\n%+v", a, again)
		}
	})
}

func normalizeTime(a stream.Alert) stream.Alert {
	a.Timestamp = a.Timestamp.UTC()
	return a
}
