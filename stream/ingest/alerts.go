package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/reactor-alerts/reactor/handlers"
	"github.com/reactor-alerts/reactor/handlers/internal/strictjson"
	"github.com/reactor-alerts/reactor/processor"
)

// parseAlerts reads reactor's own alert JSON: one object, an array of
// objects, or objects one after the other (NDJSON). Each has a "subject"
// under "alerts." or a "name"; one without an id gets a new one, one without
// a timestamp the time of the request.
func parseAlerts(body []byte) ([]handlers.Alert, error) {
	body, err := trimBody(body)
	if err != nil {
		return nil, err
	}
	var raws []json.RawMessage
	if body[0] == '[' {
		if err := json.Unmarshal(body, &raws); err != nil {
			return nil, badRequest("%s", strictjson.Describe(err))
		}
	} else {
		dec := json.NewDecoder(bytes.NewReader(body))
		for {
			var raw json.RawMessage
			err := dec.Decode(&raw)
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, badRequest("alert %d: %s", len(raws), strictjson.Describe(err))
			}
			raws = append(raws, raw)
		}
	}
	now := time.Now().UTC()
	out := make([]handlers.Alert, 0, len(raws))
	for i, raw := range raws {
		a, err := ownAlert(raw)
		if err != nil {
			return nil, badRequest("alert %d: %v", i, err)
		}
		if a.ID == "" {
			a.ID = handlers.NewID()
		}
		if a.Timestamp.IsZero() {
			a.Timestamp = now
		}
		out = append(out, a)
	}
	return out, nil
}

// ownAlert decodes one alert object, its subject from "subject" or "name".
func ownAlert(raw json.RawMessage) (handlers.Alert, error) {
	if len(raw) == 0 || raw[0] != '{' {
		return handlers.Alert{}, errors.New("want a JSON object")
	}
	var probe struct {
		Subject string `json:"subject"`
		Name    string `json:"name"`
	}
	perr := json.Unmarshal(raw, &probe) // on error, DecodeAlert says what is wrong
	subject := probe.Subject
	if subject == "" && probe.Name != "" {
		subject = handlers.SubjectPrefix + strings.TrimPrefix(probe.Name, handlers.SubjectPrefix)
	}
	switch {
	case subject == "" && perr == nil:
		return handlers.Alert{}, errors.New(`neither "subject" nor "name"`)
	case subject != "" && !strings.HasPrefix(subject, handlers.SubjectPrefix):
		return handlers.Alert{}, fmt.Errorf("subject %q: want %s<name>", subject, handlers.SubjectPrefix)
	}
	a, err := handlers.DecodeAlert(subject, raw)
	if err != nil {
		var perm *processor.PermanentError
		if errors.As(err, &perm) {
			err = perm.Err
		}
		return handlers.Alert{}, err
	}
	return a, nil
}
