//go:build !unix

package bench

import "time"

// cpuTime is not measured here: CPU per alert reads as 0.
func cpuTime() time.Duration { return 0 }
