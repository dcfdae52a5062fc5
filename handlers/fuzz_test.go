package handlers_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/reactor-alerts/reactor/handlers"
	"github.com/reactor-alerts/reactor/processor"
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
// a JSON round trip unchanged, or fails with a permanent ErrInvalidAlert.
// Seeds: testdata/alerts.
func FuzzDecodeAlert(f *testing.F) {
	addFiles(f, "../testdata/alerts/good/*")
	addFiles(f, "../testdata/alerts/bad/*")
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := handlers.DecodeAlert("alerts.fuzz", data)
		if err != nil {
			var perm *processor.PermanentError
			if !errors.As(err, &perm) || !errors.Is(err, handlers.ErrInvalidAlert) {
				t.Fatalf("error %v is not a permanent ErrInvalidAlert", err)
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
		again, err := handlers.DecodeAlert("alerts.fuzz", enc)
		if err != nil {
			t.Fatalf("re-decoding %s: %v", enc, err)
		}
		if !reflect.DeepEqual(normalizeTime(a), normalizeTime(again)) {
			t.Fatalf("round trip changed the alert:\n%+v\n%+v", a, again)
		}
	})
}

var fuzzAlerts = []handlers.Alert{
	{Subject: "alerts.disk.db-3", Name: "disk.db-3", Severity: "critical", Labels: map[string]string{"team": "db", "instance": "db-3"}},
	{Subject: "alerts.x", Name: "x", Severity: "info", Status: handlers.StatusResolved},
}

func normalizeTime(a handlers.Alert) handlers.Alert {
	a.Timestamp = a.Timestamp.UTC()
	return a
}

// FuzzParseConfig: any config either fails to parse with an error, or
// registers on a fresh router without panicking and evaluates its rules on
// alerts, explaining each as it takes it. Seeds: testdata/handlers
// (rules.example.yaml and bad_rules_*.yaml for conditions, suppress and
// limit).
func FuzzParseConfig(f *testing.F) {
	addFiles(f, "../testdata/handlers/*.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := handlers.ParseConfig(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if err := handlers.Register(processor.NewRouter(), cfg, handlers.Deps{Out: io.Discard}); err != nil {
			t.Fatalf("parsed config does not register: %v", err)
		}
		rs, err := handlers.NewRules(cfg, handlers.Deps{Out: io.Discard})
		if err != nil {
			t.Fatalf("parsed config does not compile: %v", err)
		}
		for _, a := range fuzzAlerts {
			if _, err := rs.Explain(context.Background(), a); err != nil {
				t.Fatalf("explain %+v: %v", a, err)
			}
		}
	})
}
