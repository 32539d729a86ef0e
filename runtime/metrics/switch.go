package metrics

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	softswitch "github.com/capygen/capygen/runtime/switch"
)

var (
	dirValidDesc   = desc("directory_entries", "Valid migration-directory slots, by level.", "level")
	dirSlotsDesc   = desc("directory_slots", "Migration-directory slots, by level.", "level")
	rejectsDesc    = desc("switch_rejects_total", "TCPMig messages the pipeline refused, by reason: full directory, stale ACK (another target holds the entry), PREPARE with no least-loaded server.", "reason")
	dropsDesc      = desc("switch_drops_total", "Frames the pipeline dropped, by reason.", "reason")
	verdictsDesc   = desc("switch_frames_total", "Frames the pipeline processed, by verdict.", "verdict")
	minHolderDesc  = desc("switch_min_workload", "The minimum-workload register: the least-loaded server (holder) and its load; absent when empty.", "holder")
	switchHBDesc   = desc("switch_heartbeats_total", "HEARTBEAT_UPDATEs the pipeline processed.")
	dirInsertsDesc = desc("directory_inserts_total", "Directory entries installed.")
	dirDeletesDesc = desc("directory_deletes_total", "Directory entries removed (conn_closed).")
)

// Switch is the software switch's metrics, read from its Report at each
// scrape (a few milliseconds: it reads every directory slot).
type Switch struct{ sw *softswitch.Switch }

// NewSwitch registers sw's metrics with reg.
func NewSwitch(reg prometheus.Registerer, sw *softswitch.Switch) (*Switch, error) {
	s := &Switch{sw}
	if err := reg.Register(s); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return s, nil
}

// Describe implements prometheus.Collector.
func (s *Switch) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dirValidDesc, dirSlotsDesc, rejectsDesc, dropsDesc, verdictsDesc, minHolderDesc, switchHBDesc, dirInsertsDesc, dirDeletesDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (s *Switch) Collect(ch chan<- prometheus.Metric) {
	r := s.sw.Report()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for _, l := range r.Directory {
		gauge(dirValidDesc, float64(l.Valid), fmt.Sprint(l.Level))
		gauge(dirSlotsDesc, float64(l.Slots), fmt.Sprint(l.Level))
	}
	p := r.Pipeline
	counter(rejectsDesc, p.Rejects, "directory_full")
	counter(rejectsDesc, p.StaleAcks, "stale_ack")
	counter(rejectsDesc, p.PrepareRejects, "no_least_loaded")
	for reason, n := range p.Drops {
		counter(dropsDesc, n, reason)
	}
	v := r.Verdicts
	counter(verdictsDesc, v.Forwarded, "forwarded")
	counter(verdictsDesc, v.Flooded, "flooded")
	counter(verdictsDesc, v.Replied, "replied")
	counter(verdictsDesc, v.Dropped, "dropped")
	counter(switchHBDesc, p.Heartbeats)
	counter(dirInsertsDesc, p.Inserts)
	counter(dirDeletesDesc, p.Deletes)
	if !r.MinWorkload.Empty {
		gauge(minHolderDesc, float64(r.MinWorkload.Load), r.MinWorkload.Holder)
	}
}
