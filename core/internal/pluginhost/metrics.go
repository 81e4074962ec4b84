package pluginhost

import (
	"github.com/prometheus/client_golang/prometheus"
)

var (
	descUp = prometheus.NewDesc("pipecore_plugin_up",
		"1 when the plugin version is running and answering health checks, by plugin and version.", []string{"plugin", "version"}, nil)
	descServing = prometheus.NewDesc("pipecore_plugin_serving",
		"1 when some tenant's calls are routed to the plugin version.", []string{"plugin", "version"}, nil)
	descDegraded = prometheus.NewDesc("pipecore_plugin_degraded",
		"1 when the plugin version crashed 5 times within 5 minutes.", []string{"plugin", "version"}, nil)
	descRestarts = prometheus.NewDesc("pipecore_plugin_restarts_total",
		"Restarts of the plugin version after a crash, a failed health check or a hang.", []string{"plugin", "version"}, nil)
	descHangs = prometheus.NewDesc("pipecore_plugin_hangs_total",
		"Times the plugin version was killed for not answering after a call passed its deadline.", []string{"plugin", "version"}, nil)
	descInFlight = prometheus.NewDesc("pipecore_plugin_calls_in_flight",
		"Calls currently using the plugin version.", []string{"plugin", "version"}, nil)
)

var _ prometheus.Collector = (*Host)(nil)

// Describe implements prometheus.Collector: register the Host in the
// gateway's registry to export the state of every plugin version.
func (h *Host) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descUp, descServing, descDegraded, descRestarts, descHangs, descInFlight} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (h *Host) Collect(ch chan<- prometheus.Metric) {
	flag := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	seen := map[[2]string]bool{}
	for _, st := range h.Status() {
		key := [2]string{st.Name, st.Version}
		if st.State == StateRejected || seen[key] {
			continue
		}
		seen[key] = true
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, flag(st.State == StateRunning), st.Name, st.Version)
		ch <- prometheus.MustNewConstMetric(descServing, prometheus.GaugeValue, flag(st.Serving), st.Name, st.Version)
		ch <- prometheus.MustNewConstMetric(descDegraded, prometheus.GaugeValue, flag(st.Degraded), st.Name, st.Version)
		ch <- prometheus.MustNewConstMetric(descRestarts, prometheus.CounterValue, float64(st.Restarts), st.Name, st.Version)
		ch <- prometheus.MustNewConstMetric(descHangs, prometheus.CounterValue, float64(st.Hangs), st.Name, st.Version)
		ch <- prometheus.MustNewConstMetric(descInFlight, prometheus.GaugeValue, float64(st.InFlight), st.Name, st.Version)
	}
}
