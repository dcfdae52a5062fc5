package console

import (
	"fmt"
	"html/template"
	"strconv"
	"strings"
	"time"

	"github.com/reactor-alerts/reactor/handlers"
	"github.com/reactor-alerts/reactor/stream"

	"github.com/dustin/go-humanize"
)

var pageNames = []string{"overview", "alerts", "alert", "dlq", "deadletter", "confirm", "groups", "runs", "run", "error"}

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
	"add": func(a, b int) int { return a + b },
	// seqs is how many sequences a scan read.
	"seqs": func(s scanned) uint64 {
		if s.To < s.From {
			return 0
		}
		return s.To - s.From + 1
	},
	"percent": func(used, limit uint64) string {
		return fmt.Sprintf("%.0f%%", 100*float64(used)/float64(max(limit, 1)))
	},
	"half":  func(a int) int { return a / 2 },
	"halfu": func(a uint64) uint64 { return a / 2 },
	// span names a duration of whole minutes: "minute", "15 minutes",
	// "hour", "6 hours", "7 days".
	"span": func(d time.Duration) string {
		unit, n := "minute", int(d/time.Minute)
		switch {
		case d > 24*time.Hour && d%(24*time.Hour) == 0:
			unit, n = "day", int(d/(24*time.Hour))
		case d%time.Hour == 0:
			unit, n = "hour", int(d/time.Hour)
		}
		if n == 1 {
			return unit
		}
		return strconv.Itoa(n) + " " + unit + "s"
	},
	"forever":      func(t time.Time) bool { return time.Until(t) > stream.PauseIndefinitely/2 },
	"join":         strings.Join,
	"lower":        strings.ToLower,
	"outcomeClass": outcomeClass,
	"seconds": func(s float64) string {
		return time.Duration(s * float64(time.Second)).Round(time.Millisecond).String()
	},
	"lines": func(s string) int { return strings.Count(strings.TrimSuffix(s, "\n"), "\n") + 1 },
	"list":  func(v ...any) []any { return v },
	"outputOf": func(name string, out *handlers.Output) map[string]any {
		return map[string]any{"Name": name, "Out": out}
	},
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

// outcomeClass is the badge colour of a run's outcome.
func outcomeClass(outcome string) string {
	switch outcome {
	case handlers.RunOK:
		return "ok"
	case handlers.RunSuppressed, handlers.RunCanceled:
		return "warn"
	}
	return "bad"
}
