package ingest

import (
	"bytes"
	"encoding/json"
	"io"

	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/internal/strictjson"
)

// parseAlerts reads reactor's own alert JSON: one object, an array of
// objects, or objects one after the other (NDJSON). Each has a "subject"
// under "alerts." or a "name"; one without an id gets a new one, one without
// a timestamp the time of the request.
func parseAlerts(body []byte) ([]stream.Alert, error) {
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
				return nil, badRequest("alert %d: %s", len(raws)+1, strictjson.Describe(err))
			}
			raws = append(raws, raw)
		}
	}
	out := make([]stream.Alert, 0, len(raws))
	for i, raw := range raws {
		a, err := stream.ReadAlert(raw, "")
		if err != nil {
			return nil, badRequest("alert %d: %v", i+1, err)
		}
		out = append(out, a)
	}
	return out, nil
}
