package ingest_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/reactor-alerts/reactor/stream/ingest"
)

// BenchmarkAlertmanager posts Alertmanager notifications of n alerts each,
// every alert new (its startsAt differs), and reports alerts stored a
// second.
func BenchmarkAlertmanager(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprintf("alerts=%d", n), func(b *testing.B) {
			bd := setup(b, ingest.Config{})
			client := &http.Client{}
			defer client.CloseIdleConnections()
			b.ResetTimer()
			for i := range b.N {
				var alerts []string
				for j := range n {
					alerts = append(alerts, fmt.Sprintf(`{"status":"firing","labels":{"alertname":"DiskFull","host":"db-%d"},"annotations":{"summary":"disk full"},"startsAt":"2026-11-30T08:00:00.%09dZ","fingerprint":"%016x"}`, j, i, j))
				}
				body := `{"version":"4","status":"firing","receiver":"reactor","alerts":[` + strings.Join(alerts, ",") + `]}`
				resp, err := client.Post(bd.srv.URL+ingest.PathAlertmanager, "application/json", strings.NewReader(body))
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "alerts/s")
		})
	}
}
