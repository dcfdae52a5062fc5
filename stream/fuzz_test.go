package stream_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/reactor-alerts/reactor/stream"
)

func addFiles(f *testing.F, pattern string) {
	files, err := filepath.Glob(pattern)
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed files match %s", pattern)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
}

// FuzzDecodeAlert: any payload either decodes to a valid alert that survives
// a JSON round trip unchanged, or fails with ErrInvalidAlert.
// Seeds: testdata/alerts.
func FuzzDecodeAlert(f *testing.F) {
	addFiles(f, "../testdata/alerts/good/*")
	addFiles(f, "../testdata/alerts/bad/*")
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
