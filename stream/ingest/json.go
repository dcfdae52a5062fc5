package ingest

import (
	"bytes"

	"github.com/reactor-alerts/reactor/stream"
	"github.com/reactor-alerts/reactor/stream/internal/strictjson"
)

// trimBody returns body without a byte order mark and surrounding white
// space, refusing an empty one and one nested deeper than stream.MaxDepth.
func trimBody(body []byte) ([]byte, error) {
	body = bytes.TrimSpace(bytes.TrimPrefix(body, []byte("\uFEFF")))
	if len(body) == 0 {
		return nil, badRequest("empty body")
	}
	if err := strictjson.CheckDepth(body, stream.MaxDepth); err != nil {
		return nil, badRequest("%v", err)
	}
	return body, nil
}

// decodeStrict decodes one JSON value of body into v. Unknown fields are
// accepted (senders add fields over versions); trailing data is not.
func decodeStrict(body []byte, v any) error {
	body, err := trimBody(body)
	if err != nil {
		return err
	}
	if err := strictjson.Decode(body, v, strictjson.Options{}); err != nil {
		return badRequest("%v", err)
	}
	return nil
}
