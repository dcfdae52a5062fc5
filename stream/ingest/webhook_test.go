package ingest_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/reactor-alerts/reactor/processor"
	"github.com/reactor-alerts/reactor/stream/ingest"
)

func TestTokenName(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"DiskFull", "DiskFull"},
		{"High memory usage", "High_memory_usage"},
		{"db.replication>lag*", "db_replication_lag_"},
		{"  ", ingest.UnnamedDefault},
		{"", ingest.UnnamedDefault},
		{"Überlast-5xx", "Überlast-5xx"},
		{"tab\there", "tab_here"},
		{strings.Repeat("é", ingest.MaxNameRunes+10), strings.Repeat("é", ingest.MaxNameRunes)},
	}
	for _, tt := range tests {
		got := ingest.TokenName(tt.in)
		if got != tt.want {
			t.Errorf("TokenName(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if p, err := processor.ParsePattern("alerts." + got); err != nil || p.Wildcard() {
			t.Errorf("alerts.%s is not a valid subject", got)
		}
	}
}

func ExampleTokenName() {
	fmt.Println(ingest.TokenName("High CPU usage"))
	fmt.Println(ingest.TokenName("db.replication_lag"))
	fmt.Println(ingest.TokenName(""))
	// Output:
	// High_CPU_usage
	// db_replication_lag
	// unnamed
}
