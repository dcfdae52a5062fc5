package streamtest

import (
	"maps"
	"reflect"
	"testing"
	"time"

	"github.com/reactor-alerts/reactor/stream"
)

// AssertAlert fails t unless got and want are the same alert: times
// compared as instants, nil and empty maps alike.
func AssertAlert(t testing.TB, got, want stream.Alert) {
	t.Helper()
	if !got.Timestamp.Equal(want.Timestamp) {
		t.Errorf("Timestamp = %v, want %v", got.Timestamp, want.Timestamp)
	}
	if !got.EndsAt.Equal(want.EndsAt) {
		t.Errorf("EndsAt = %v, want %v", got.EndsAt, want.EndsAt)
	}
	got.Timestamp, want.Timestamp, got.EndsAt, want.EndsAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if !maps.Equal(got.Labels, want.Labels) || !maps.Equal(got.Annotations, want.Annotations) {
		t.Errorf("labels/annotations = %v/%v, want %v/%v", got.Labels, got.Annotations, want.Labels, want.Annotations)
	}
	got.Labels, got.Annotations, want.Labels, want.Annotations = nil, nil, nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("alert = %+v\nwant    %+v", got, want)
	}
}
