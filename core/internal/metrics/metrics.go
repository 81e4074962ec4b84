// Package metrics holds the gateway's Prometheus metrics and serves them.
// A nil *Metrics is valid and records nothing, so packages can be tested
// without a registry.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// Metrics are the gateway's instruments.
type Metrics struct {
	reg              *prometheus.Registry
	webhooksReceived *prometheus.CounterVec
	webhooksRejected *prometheus.CounterVec
	quarantined      *prometheus.CounterVec
	inboxLag         *prometheus.HistogramVec
	deliveries       *prometheus.CounterVec
	attemptLatency   *prometheus.HistogramVec
	deadLetters      prometheus.Counter
	endpointsOff     *prometheus.CounterVec
	pluginCalls      *prometheus.HistogramVec
}

// New registers the gateway's metrics, plus the Go runtime and process
// collectors, on a fresh registry.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		webhooksReceived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pipecore_webhooks_received_total", Help: "Verified provider webhooks, by provider and outcome (accepted, duplicate).",
		}, []string{"provider", "outcome"}),
		webhooksRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pipecore_webhooks_rejected_total", Help: "Provider webhooks refused, by provider and reason.",
		}, []string{"provider", "reason"}),
		quarantined: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pipecore_webhooks_quarantined_total", Help: "Verified webhooks the plugin could not parse, by provider.",
		}, []string{"provider"}),
		inboxLag: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "pipecore_inbox_lag_seconds", Help: "Time from accepting a webhook to recording its events.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 14),
		}, []string{"provider"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pipecore_deliveries_total", Help: "Delivery attempts to tenant endpoints, by outcome (delivered, retry, gone, dead).",
		}, []string{"outcome"}),
		attemptLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "pipecore_delivery_attempt_seconds", Help: "Latency of delivery attempts, by outcome.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 14),
		}, []string{"outcome"}),
		deadLetters: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pipecore_dead_letters_total", Help: "Deliveries dead-lettered after their last attempt or a gone endpoint.",
		}),
		endpointsOff: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pipecore_endpoints_disabled_total", Help: "Tenant endpoints the gateway disabled, by reason (gone: answered 410; failing: every attempt failed too long).",
		}, []string{"reason"}),
		pluginCalls: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "pipecore_plugin_call_seconds", Help: "Latency of plugin calls, by plugin, method and outcome.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 14),
		}, []string{"plugin", "method", "outcome"}),
	}
	reg.MustRegister(m.webhooksReceived, m.webhooksRejected, m.quarantined, m.inboxLag, m.deliveries,
		m.attemptLatency, m.deadLetters, m.endpointsOff, m.pluginCalls,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() fasthttp.RequestHandler {
	return fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
}

// Registry exposes the registry (tests gather from it).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// WebhookReceived counts a verified webhook.
func (m *Metrics) WebhookReceived(provider, outcome string) {
	if m != nil {
		m.webhooksReceived.WithLabelValues(provider, outcome).Inc()
	}
}

// WebhookRejected counts a refused webhook.
func (m *Metrics) WebhookRejected(provider, reason string) {
	if m != nil {
		if provider == "" {
			provider = "unknown"
		}
		m.webhooksRejected.WithLabelValues(provider, reason).Inc()
	}
}

// Quarantined counts a webhook moved to quarantine.
func (m *Metrics) Quarantined(provider string) {
	if m != nil {
		m.quarantined.WithLabelValues(provider).Inc()
	}
}

// InboxLag observes the time from accepting a webhook to recording its events.
func (m *Metrics) InboxLag(provider string, d time.Duration) {
	if m != nil {
		m.inboxLag.WithLabelValues(provider).Observe(d.Seconds())
	}
}

// Attempt observes one delivery attempt.
func (m *Metrics) Attempt(outcome string, d time.Duration) {
	if m != nil {
		m.deliveries.WithLabelValues(outcome).Inc()
		m.attemptLatency.WithLabelValues(outcome).Observe(d.Seconds())
	}
}

// DeadLetter counts a dead-lettered delivery.
func (m *Metrics) DeadLetter() {
	if m != nil {
		m.deadLetters.Inc()
	}
}

// EndpointDisabled counts an endpoint the gateway disabled.
func (m *Metrics) EndpointDisabled(reason string) {
	if m != nil {
		m.endpointsOff.WithLabelValues(reason).Inc()
	}
}

// PluginCall observes one plugin call.
func (m *Metrics) PluginCall(plugin, method, outcome string, d time.Duration) {
	if m != nil {
		m.pluginCalls.WithLabelValues(plugin, method, outcome).Observe(d.Seconds())
	}
}
