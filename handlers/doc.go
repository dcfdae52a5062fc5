// Package handlers is what reactor does with alerts: the handlers a Go
// program registers with On, and the rules of a YAML config (NewRules) that
// `reactor run --config reactor.yaml` runs.
//
// In Go, a handler gets the alert decoded (stream.Alert) and returns what
// should become of it (see AlertFunc):
//
//	r := processor.NewRouter()
//	handlers.On(r, "terminator_detected", func(ctx context.Context, a stream.Alert) error {
//		return alertSarahConnor(ctx, a.Summary) // nil acks; an error retries, then dead-letters
//	})
//	p, err := processor.New(js, r, processor.Config{})
//
// The built-in actions are handlers too: Print, Exec, Webhook, Slack and
// PagerDuty; their commands, requests and messages are templates over the
// alert (see TemplateData). From YAML,
// LoadConfig reads a config and NewRules compiles it into Rules, a
// processor.Mux whose entries (a pattern, conditions, suppression, limits,
// actions) decide what each alert gets; see Config.
//
// A payload that is not a valid alert is a permanent error: retrying cannot
// fix it, so the processor dead-letters it at once with the reason.
package handlers
