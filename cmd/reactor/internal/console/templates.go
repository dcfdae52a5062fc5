package console

import (
	"fmt"
	"html/template"
	"strconv"
	"strings"
	"time"

	"github.com/reactor-alerts/reactor/stream"

	"github.com/dustin/go-humanize"
)

var pageNames = []string{"overview", "alerts", "alert", "dlq", "deadletter", "confirm", "groups", "error"}

func parsePages() (map[string]*template.Template, error) {
	base, err := template.New("layout").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	pages := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.Must(base.Clone()).ParseFS(templateFS, "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: %w", err)
		}
		pages[name] = t
	}
	return pages, nil
}

var funcs = template.FuncMap{
	"ago":   ago,
	"when":  when,
	"bytes": humanize.IBytes,
	"opt": func(n *uint64) string {
		if n == nil {
			return "?"
		}
		return strconv.FormatUint(*n, 10)
	},
	"backlog": func(gs []stream.GroupStatus) uint64 {
		var n uint64
		for _, g := range gs {
			n += g.Backlog
		}
		return n
	},
	"paused": func(gs []stream.GroupStatus) int {
		n := 0
		for _, g := range gs {
			if g.Paused {
				n++
			}
		}
		return n
	},
	// old reports an unsettled alert past half the stream's max age.
	"old": func(now, t time.Time, maxAgeSeconds float64) bool {
		return maxAgeSeconds > 0 && !t.IsZero() && now.Sub(t).Seconds() > maxAgeSeconds/2
	},
	"percent": func(used, limit uint64) string {
		return fmt.Sprintf("%.0f%%", 100*float64(used)/float64(max(limit, 1)))
	},
	"add":   func(a, b int) int { return a + b },
	"half":  func(a int) int { return a / 2 },
	"halfu": func(a uint64) uint64 { return a / 2 },
	"hours": func(minutes int) string {
		if minutes%60 == 0 {
			if minutes == 60 {
				return "hour"
			}
			return strconv.Itoa(minutes/60) + " hours"
		}
		return strconv.Itoa(minutes) + " minutes"
	},
	"forever": func(t time.Time) bool { return time.Until(t) > stream.PauseIndefinitely/2 },
	"join":    strings.Join,
	"lower":   strings.ToLower,
	"originSeq": func(e stream.DLQEntry) string {
		if e.Stream == "" || e.Sequence == 0 {
			return ""
		}
		return strconv.FormatUint(e.Sequence, 10)
	},
}

// ago says how long before now t was ("3 minutes ago"), "-" for the zero
// time.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return humanize.RelTime(t, now, "ago", "from now")
}

// when is a time in UTC with how long ago it was.
func when(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05") + " UTC (" + ago(now, t) + ")"
}
