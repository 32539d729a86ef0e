// Package metrics exposes a server's and the switch's state to Prometheus:
// migrations by outcome and their phase times, held segments and buffer
// drops, the load metric, and the switch's directory occupancy, rejects,
// drops by reason and minimum-workload holder.
//
// Counters are read from the engine, the balancer and the switch when
// Prometheus scrapes (Collectors), so the data path pays nothing for
// them; the histograms are fed by the migration records (Server.Observe,
// on the engine's OnRecord).
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/capygen/capygen/runtime/migrate"
	"github.com/capygen/capygen/runtime/policy"
)

const namespace = "capygen"

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, labels, nil)
}

var (
	migrationsDesc  = desc("migrations_total", "Migrations by this server's role in them and how they ended; not_started: Start refused (no such connection, not established, already moving).", "role", "result")
	retriesDesc     = desc("migration_retries_total", "TCPMig resends on timeout, both roles.")
	heldDesc        = desc("held_segments_total", "Client segments held while their connection was on its way in.")
	heldDropsDesc   = desc("held_segment_drops_total", "Client segments dropped over the hold's bounds: the buffer drops.")
	replayedDesc    = desc("replayed_segments_total", "Held segments replayed to restored connections.")
	tombDesc        = desc("tombstone_drops_total", "Segments of connections that left, dropped silently.")
	messagesDesc    = desc("tcpmig_unused_messages_total", "TCPMig datagrams the engine did not use, by reason.", "reason")
	entriesDesc     = desc("directory_upkeep_total", "What this server did for the switch's directory entries and tombstones beyond migrating: conn_closed sent for finished migrated-in connections and echoed, entries pointed back here, conn_aborted sent after an abort, tombstones a conn_aborted ended.", "event")
	comebacksDesc   = desc("migration_comebacks_total", "Outgoing migrations that ended as moved without their CONN_STATE_ACK, because the connection came back here in a later migration first.")
	heartbeatsDesc  = desc("heartbeats_total", "HEARTBEAT_UPDATEs sent.")
	minWorkloadDesc = desc("reported_min_workload", "The switch's minimum workload, from the last heartbeat reply.")
	loadDesc        = desc("load", "This server's load as its heartbeats carry it, in the metric's units.", "metric")
	decisionsDesc   = desc("policy_decisions_total", "Periods the policy wanted a move, by what came of it.", "outcome")
)

// Server is one server's metrics: a Collector over its engine (and
// balancer, if any) and histograms fed by its migration records.
type Server struct {
	eng *migrate.Engine
	bal *policy.Balancer

	phase *prometheus.HistogramVec
	work  *prometheus.HistogramVec
	e2e   prometheus.Histogram
}

// NewServer registers eng's metrics (and bal's, if not nil) with reg.
// Call Observe with each migration record.
func NewServer(reg prometheus.Registerer, eng *migrate.Engine, bal *policy.Balancer) (*Server, error) {
	if eng == nil {
		return nil, errors.New("metrics: NewServer needs the server's migration engine")
	}
	s := &Server{
		eng: eng, bal: bal,
		phase: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "migration_phase_seconds",
			Help:    "Time from a migration's previous phase to this one, on this server.",
			Buckets: prometheus.ExponentialBuckets(1e-6, 2, 22)}, []string{"role", "phase"}),
		work: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "migration_work_seconds",
			Help:    "This server's migration work per migration (its part of the host overhead).",
			Buckets: prometheus.ExponentialBuckets(1e-6, 2, 22)}, []string{"role"}),
		e2e: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: "migration_seconds",
			Help:    "Outgoing migrations from PREPARE_MIG sent to CONN_STATE_ACK received.",
			Buckets: prometheus.ExponentialBuckets(10e-6, 2, 20)}),
	}
	for _, c := range []prometheus.Collector{s, s.phase, s.work, s.e2e} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	return s, nil
}

// Observe feeds a migration record to the histograms.
func (s *Server) Observe(r migrate.Record) {
	role := string(r.Role)
	s.work.WithLabelValues(role).Observe(r.Work.Seconds())
	first, last := migrate.PhasePrepareSent, migrate.PhaseStateAcked
	if r.Role == migrate.RoleTarget {
		first, last = migrate.PhasePrepareReceived, migrate.PhaseStateAckSent
	}
	prev := r.At[first]
	for p := first + 1; p <= last; p++ {
		if r.At[p] == 0 || prev == 0 {
			continue
		}
		s.phase.WithLabelValues(role, p.String()).Observe(time.Duration(r.At[p] - prev).Seconds())
		prev = r.At[p]
	}
	if r.Role == migrate.RoleOrigin && r.At[migrate.PhasePrepareSent] != 0 && r.At[migrate.PhaseStateAcked] != 0 {
		s.e2e.Observe(time.Duration(r.At[migrate.PhaseStateAcked] - r.At[migrate.PhasePrepareSent]).Seconds())
	}
}

// Describe implements prometheus.Collector.
func (s *Server) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{migrationsDesc, retriesDesc, heldDesc, heldDropsDesc, replayedDesc, tombDesc,
		messagesDesc, entriesDesc, comebacksDesc, heartbeatsDesc, minWorkloadDesc} {
		ch <- d
	}
	if s.bal != nil {
		ch <- loadDesc
		ch <- decisionsDesc
	}
}

// Collect implements prometheus.Collector.
func (s *Server) Collect(ch chan<- prometheus.Metric) {
	st := s.eng.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(migrationsDesc, st.Moved, "origin", "moved")
	counter(migrationsDesc, st.Stayed, "origin", "stayed")
	counter(migrationsDesc, st.Aborted, "origin", "aborted")
	counter(migrationsDesc, st.NotStarted, "origin", "not_started")
	counter(migrationsDesc, st.Accepted, "target", "accepted")
	counter(migrationsDesc, st.Abandoned, "target", "abandoned")
	counter(migrationsDesc, st.RestoreFailures, "target", "refused")
	counter(retriesDesc, st.Retries)
	counter(heldDesc, st.Held)
	counter(heldDropsDesc, st.HeldOverflow)
	counter(replayedDesc, st.Replayed)
	counter(tombDesc, st.TombstoneDrops)
	counter(messagesDesc, st.Ignored, "ignored")
	counter(messagesDesc, st.Unexpected, "unexpected")
	counter(messagesDesc, st.BadMessages, "bad")
	counter(entriesDesc, st.Releases, "release_sent")
	counter(entriesDesc, st.ReleaseAcks, "release_echoed")
	counter(entriesDesc, st.Reclaims, "reclaimed")
	counter(entriesDesc, st.AbortNotices, "abort_notice_sent")
	counter(entriesDesc, st.TombstonesEnded, "tombstone_ended")
	counter(comebacksDesc, st.Comebacks)
	counter(heartbeatsDesc, st.HeartbeatsOut)
	ch <- prometheus.MustNewConstMetric(minWorkloadDesc, prometheus.GaugeValue, float64(st.MinWorkload))
	if s.bal != nil {
		b := s.bal.Stats()
		ch <- prometheus.MustNewConstMetric(loadDesc, prometheus.GaugeValue, float64(b.Load), s.bal.Metric.String())
		counter(decisionsDesc, b.Asked, "asked")
		counter(decisionsDesc, b.AskFailed, "session_gone")
		counter(decisionsDesc, b.Limited, "rate_limited")
		counter(decisionsDesc, b.NoneEligible, "none_eligible")
	}
}

// NewRegistry is a registry with the Go runtime's and the process's
// collectors, which every capygen process serves beside its own.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Serve answers GET /metrics on addr (a kernel address in the process's
// namespace, such as 127.0.0.1:9100) until ctx ends.
func Serve(ctx context.Context, addr string, reg *prometheus.Registry) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics: listening on %s: %w", addr, err)
	}
	return ServeListener(ctx, ln, reg)
}

// ServeListener is Serve on a listener the caller opened (so that a bad
// address fails before anything starts).
func ServeListener(ctx context.Context, ln net.Listener, reg *prometheus.Registry) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}
