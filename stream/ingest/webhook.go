package ingest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/reactor-alerts/reactor/stream"
)

// Versions of the webhook payloads the endpoints read: Alertmanager's
// webhook_configs payload on /v1/alertmanager, Grafana's webhook contact
// point on /v1/grafana.
const (
	AlertmanagerVersion = "4"
	GrafanaVersion      = "1"
)

// webhookMessage is the body Alertmanager's webhook receiver posts (its
// notify/webhook Message and template Data) and, with a few more fields,
// Grafana's webhook contact point. Fields reactor does not use (groupKey,
// groupLabels, commonLabels, notification_reason, routeLabels, Grafana's
// title, state and message, ...) are accepted and ignored.
type webhookMessage struct {
	Version         string         `json:"version"`
	Receiver        string         `json:"receiver"`
	Status          string         `json:"status"`
	Alerts          []webhookAlert `json:"alerts"`
	ExternalURL     string         `json:"externalURL"`
	TruncatedAlerts uint64         `json:"truncatedAlerts"`
}

// webhookAlert is one alert of a webhookMessage.
type webhookAlert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
	// Grafana only.
	SilenceURL   string `json:"silenceURL"`
	DashboardURL string `json:"dashboardURL"`
	PanelURL     string `json:"panelURL"`
}

func (h *Handler) alertmanager(body []byte) ([]stream.Alert, error) {
	var m webhookMessage
	if err := decodeStrict(body, &m); err != nil {
		return nil, err
	}
	if m.Version != AlertmanagerVersion {
		return nil, badRequest("unsupported payload version %q: want %q (Alertmanager's webhook_configs payload)", m.Version, AlertmanagerVersion)
	}
	return h.mapWebhook(m, "alertmanager")
}

func (h *Handler) grafana(body []byte) ([]stream.Alert, error) {
	var m webhookMessage
	if err := decodeStrict(body, &m); err != nil {
		return nil, err
	}
	if m.Version != GrafanaVersion {
		return nil, badRequest("unsupported payload version %q: want %q (Grafana's webhook contact point payload)", m.Version, GrafanaVersion)
	}
	return h.mapWebhook(m, "grafana")
}

// mapWebhook maps every alert of m; source names the sender in the ids.
func (h *Handler) mapWebhook(m webhookMessage, source string) ([]stream.Alert, error) {
	if m.Alerts == nil {
		return nil, badRequest(`no "alerts" array in the payload`)
	}
	if m.TruncatedAlerts > 0 {
		h.cfg.Logger.Warn("ingest payload truncated by its sender",
			"endpoint", source, "receiver", m.Receiver, "truncated", m.TruncatedAlerts)
	}
	out := make([]stream.Alert, 0, len(m.Alerts))
	for i, wa := range m.Alerts {
		a, err := h.mapAlert(wa, source)
		if err != nil {
			return nil, badRequest("alert %d: %v", i+1, err)
		}
		out = append(out, a)
	}
	return out, nil
}

func (h *Handler) mapAlert(wa webhookAlert, source string) (stream.Alert, error) {
	if len(wa.Labels) == 0 {
		return stream.Alert{}, errors.New("no labels: an alert is identified by its labels")
	}
	if wa.Status != stream.StatusFiring && wa.Status != stream.StatusResolved {
		return stream.Alert{}, fmt.Errorf("status %q: want %s or %s", wa.Status, stream.StatusFiring, stream.StatusResolved)
	}
	name := TokenName(wa.Labels[h.cfg.SubjectLabel])
	a := stream.Alert{
		ID:          webhookID(source, wa),
		Name:        name,
		Subject:     stream.SubjectPrefix + name,
		Severity:    severity(wa.Labels["severity"]),
		Summary:     firstNonEmpty(wa.Annotations["summary"], wa.Annotations["description"], wa.Labels[h.cfg.SubjectLabel], name),
		Labels:      maps.Clone(wa.Labels),
		Annotations: maps.Clone(wa.Annotations),
		Source:      wa.GeneratorURL,
		Timestamp:   wa.StartsAt.UTC(),
		Status:      wa.Status,
	}
	if wa.Status == stream.StatusResolved && !wa.EndsAt.IsZero() {
		a.EndsAt = wa.EndsAt.UTC()
	}
	for k, v := range map[string]string{"silenceURL": wa.SilenceURL, "dashboardURL": wa.DashboardURL, "panelURL": wa.PanelURL} {
		if v == "" {
			continue
		}
		if a.Annotations == nil {
			a.Annotations = make(map[string]string)
		}
		if _, ok := a.Annotations[k]; !ok {
			a.Annotations[k] = v
		}
	}
	if a.Timestamp.IsZero() {
		a.Timestamp = time.Now().UTC()
	}
	return a, nil
}

// webhookID identifies one notification of one alert: the sender, the
// alert's fingerprint (its labels when the sender gave none), when it
// started and its status. A notification retried by its sender gets the
// same id, so the stream stores it once.
func webhookID(source string, wa webhookAlert) string {
	fp := wa.Fingerprint
	if fp == "" {
		var b strings.Builder
		for _, k := range slices.Sorted(maps.Keys(wa.Labels)) {
			b.WriteString(k)
			b.WriteByte(0)
			b.WriteString(wa.Labels[k])
			b.WriteByte(0)
		}
		fp = b.String()
	}
	sum := sha256.Sum256([]byte(source + "\x00" + fp + "\x00" + wa.StartsAt.UTC().Format(time.RFC3339Nano) + "\x00" + wa.Status))
	return source + "-" + hex.EncodeToString(sum[:16])
}

// MaxNameRunes bounds the name TokenName makes: a subject must fit a NATS
// protocol line.
const MaxNameRunes = 128

// TokenName makes s a valid NATS subject token: letters, digits, '-' and
// '_' are kept, anything else becomes '_', and it is cut at MaxNameRunes.
// An empty s is UnnamedDefault.
func TokenName(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return UnnamedDefault
	}
	if r := []rune(s); len(r) > MaxNameRunes {
		s = string(r[:MaxNameRunes])
	}
	return strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) {
			return r
		}
		return '_'
	}, s)
}

// severity maps a severity label to reactor's severities: info, warning,
// error, critical and their usual short forms; anything else (or nothing)
// is warning. The label itself stays among the alert's labels.
func severity(label string) string {
	switch strings.ToLower(strings.TrimSpace(label)) {
	case "critical", "crit", "page", "fatal", "emergency", "alert":
		return stream.SeverityCritical
	case "error", "err", "high", "major":
		return stream.SeverityError
	case "info", "informational", "notice", "low", "none":
		return stream.SeverityInfo
	}
	return stream.SeverityWarning
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if strings.TrimSpace(s) != "" {
			return s
		}
	}
	return ""
}
