package processor_test

import (
	"testing"

	"github.com/reactor-alerts/reactor/stream/streamtest"
)

// partitioned is a NetnsCluster whose kill cuts a server off the network
// and whose restart joins it again.
type partitioned struct{ *streamtest.NetnsCluster }

func (p partitioned) Kill(i int)    { p.Partition(i) }
func (p partitioned) Restart(i int) { p.Heal(i) }

func newPartitionCluster(t *testing.T) failoverCluster {
	return partitioned{streamtest.NewNetnsCluster(t, 3)}
}
