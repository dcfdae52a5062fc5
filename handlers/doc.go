// Package handlers is what reactor does with alerts out of the box: decode
// the payload into a stream.Alert, then print it, run a command or call a
// webhook.
//
// The handlers are ordinary processor.Handler values, usable from Go:
//
//	r := processor.NewRouter()
//	r.Handle("alerts.terminator_detected", &handlers.Exec{Command: []string{"/usr/local/bin/page", "--team", "ops"}})
//	r.Handle("alerts.>", &handlers.Print{})
//
// or from a YAML file read by LoadConfig and wired by Register, which is what
// `reactor run --config reactor.yaml` does.
//
// Every handler decodes its message with Decode first. A payload that is not a
// valid alert is a permanent error: retrying cannot fix it, so the processor
// dead-letters it at once with the reason.
package handlers
