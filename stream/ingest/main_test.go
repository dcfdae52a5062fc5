package ingest_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind: an HTTP
// connection, a publish waiting for its acknowledgement.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
