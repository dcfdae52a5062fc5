//go:build !linux

package processor_test

import "testing"

func newPartitionCluster(t *testing.T) failoverCluster {
	t.Skip("network namespaces are Linux's")
	return nil
}
