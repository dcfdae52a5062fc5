package handlers_test

import (
	"context"
	"io"
	"testing"

	"github.com/reactor-alerts/reactor/handlers"
	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/streamtest"
)

var fuzzAlerts = []stream.Alert{
	{Subject: "alerts.disk.db-3", Name: "disk.db-3", Severity: "critical", Labels: map[string]string{"team": "db", "instance": "db-3"}},
	{Subject: "alerts.x", Name: "x", Severity: "info", Status: stream.StatusResolved},
}

// FuzzParseConfig: any config either fails to parse with an error, or
// compiles without panicking and evaluates its rules on
// alerts, explaining each as it takes it. Seeds: testdata/handlers
// (rules.example.yaml and bad_rules_*.yaml for conditions, suppress and
// limit).
func FuzzParseConfig(f *testing.F) {
	streamtest.SeedFiles(f, "../testdata/handlers/*.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := handlers.ParseConfig(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
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
