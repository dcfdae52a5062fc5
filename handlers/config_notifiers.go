package handlers

import (
	"fmt"
	"time"

	"gopkg.in/yaml.v3"
)

// SlackConfig is an entry's slack action: the fields of Slack.
type SlackConfig struct {
	// WebhookURL is the incoming webhook's URL; ${VAR} is expanded.
	// Required.
	WebhookURL string `yaml:"webhook_url"`
	// Text is the message's text, a template. Defaults to the summary.
	Text string `yaml:"text"`
	// Timeout bounds each request. Defaults to 10s.
	Timeout time.Duration `yaml:"timeout"`
}

// PagerDutyConfig is an entry's pagerduty action: the fields of PagerDuty.
type PagerDutyConfig struct {
	// RoutingKey is the Events API v2 integration key; ${VAR} is expanded.
	// Required.
	RoutingKey string `yaml:"routing_key"`
	// URL is the Events API endpoint; ${VAR} is expanded. Defaults to
	// PagerDutyURLDefault.
	URL string `yaml:"url"`
	// DedupKey is the events' dedup_key, a template. Defaults to a digest
	// of the group, the entry, the alert's name and its labels.
	DedupKey string `yaml:"dedup_key"`
	// Severity maps reactor's severities to PagerDuty's. Defaults to the
	// same name for each.
	Severity map[string]string `yaml:"severity"`
	// Source is the payload's source, a template. Defaults to
	// PagerDutySourceDefault.
	Source string `yaml:"source"`
	// Timeout bounds each request. Defaults to 10s.
	Timeout time.Duration `yaml:"timeout"`
}

func (x *SlackConfig) action() *Slack {
	return &Slack{WebhookURL: x.WebhookURL, Text: x.Text, Timeout: x.Timeout}
}

func (x *PagerDutyConfig) action() *PagerDuty {
	return &PagerDuty{RoutingKey: x.RoutingKey, URL: x.URL, DedupKey: x.DedupKey, Severity: x.Severity, Source: x.Source, Timeout: x.Timeout}
}

// UnmarshalYAML decodes a slack action, expanding ${VAR} in webhook_url.
func (x *SlackConfig) UnmarshalYAML(n *yaml.Node) error {
	n = resolve(n)
	err := decodeMapping(n, "slack", fields{
		"webhook_url": expandedStr(&x.WebhookURL, "slack.webhook_url"),
		"text":        str(&x.Text, "slack.text"),
		"timeout":     duration(&x.Timeout, "slack.timeout"),
	})
	if err != nil {
		return err
	}
	if err := x.action().validate(); err != nil {
		return lineErrorf(n, "%v", err) // never the URL: it is a secret
	}
	return nil
}

// UnmarshalYAML decodes a pagerduty action, expanding ${VAR} in
// routing_key and url.
func (x *PagerDutyConfig) UnmarshalYAML(n *yaml.Node) error {
	n = resolve(n)
	err := decodeMapping(n, "pagerduty", fields{
		"routing_key": expandedStr(&x.RoutingKey, "pagerduty.routing_key"),
		"url":         expandedStr(&x.URL, "pagerduty.url"),
		"dedup_key":   str(&x.DedupKey, "pagerduty.dedup_key"),
		"severity":    strMap(&x.Severity, "pagerduty.severity", nil, nil),
		"source":      str(&x.Source, "pagerduty.source"),
		"timeout":     duration(&x.Timeout, "pagerduty.timeout"),
	})
	if err != nil {
		return err
	}
	if err := x.action().validate(); err != nil {
		return lineErrorf(n, "%v", err)
	}
	return nil
}

// expandedStr decodes a string and expands ${VAR} in it.
func expandedStr(dst *string, what string) func(*yaml.Node) error {
	return func(v *yaml.Node) error {
		if err := str(dst, what)(v); err != nil {
			return err
		}
		return expandAt(v, dst, what, expandEnv)
	}
}

// validateNotifiers checks an entry's slack and pagerduty actions.
func (e Entry) validateNotifiers() error {
	if x := e.Slack; x != nil {
		if err := x.action().validate(); err != nil {
			return fmt.Errorf("handler %q: %w", e.On, err)
		}
	}
	if x := e.PagerDuty; x != nil {
		if err := x.action().validate(); err != nil {
			return fmt.Errorf("handler %q: %w", e.On, err)
		}
	}
	return nil
}
