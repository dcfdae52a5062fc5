// Package human formats times and sizes for people: the command line's
// tables and the web console show them alike.
package human

import (
	"fmt"
	"strings"
	"time"
)

// Ago says how long before now t was: "just now", "42s ago", "3h5m ago",
// "4d ago"; "-" for the zero time.
func Ago(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < time.Second:
		return "just now"
	case d < time.Minute:
		return d.Truncate(time.Second).String() + " ago"
	case d < 48*time.Hour:
		return strings.TrimSuffix(d.Truncate(time.Minute).String(), "0s") + " ago"
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

// Bytes formats n with a binary unit: "512 B", "1.5 KiB".
func Bytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
