package gateway

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/surge-retail/surge/engine"
	"github.com/surge-retail/surge/internal/buildinfo"
)

// metrics holds the gateway's Prometheus metrics, resolved per route and
// code up front so that the served path does no label lookup.
type metrics struct {
	requestsVec *prometheus.CounterVec
	// requests is created on first use so that /metrics lists only the
	// (route, code) pairs seen.
	requests              [routesLen][len(codeTable)]atomic.Pointer[prometheus.Counter]
	latencyVec, engineVec *prometheus.HistogramVec
	latency, engine       [routesLen]atomic.Pointer[prometheus.Observer]
	sheds                 [shedReasonsLen]prometheus.Counter
	notifyRefusedVec      *prometheus.CounterVec
	// adminActions counts admin actions carried out, by action (salectl.go).
	adminActions *prometheus.CounterVec
}

// notifyRefused counts a refused WeChat Pay notification by reason (a
// bounded set: the verifier's, the engine's and the gateway's reasons).
func (m *metrics) notifyRefused(reason string) {
	m.notifyRefusedVec.WithLabelValues(notifyReasonLabel(reason)).Inc()
}

// observer returns the histogram of route r in vec, created on first use.
func observer(p *atomic.Pointer[prometheus.Observer], vec *prometheus.HistogramVec, r routeID) prometheus.Observer {
	if o := p.Load(); o != nil {
		return *o
	}
	o := vec.WithLabelValues(routes[r].name)
	p.Store(&o)
	return o
}

// observeLatency records a request's time on route r.
func (m *metrics) observeLatency(r routeID, d time.Duration) {
	observer(&m.latency[r], m.latencyVec, r).Observe(d.Seconds())
}

// observeEngine records an engine call's time on route r.
func (m *metrics) observeEngine(r routeID, d time.Duration) {
	observer(&m.engine[r], m.engineVec, r).Observe(d.Seconds())
}

// request returns the counter of route r and code index ci.
func (m *metrics) request(r routeID, ci int) prometheus.Counter {
	if c := m.requests[r][ci].Load(); c != nil {
		return *c
	}
	c := m.requestsVec.WithLabelValues(routes[r].name, strconv.Itoa(codeTable[ci].code))
	m.requests[r][ci].Store(&c)
	return c
}

func newMetrics(reg *prometheus.Registry, eng Engine) (*metrics, error) {
	m := &metrics{}
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "surge", Subsystem: "gateway", Name: "requests_total",
		Help: "Requests answered, by route and API code.",
	}, []string{"route", "code"})
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "surge", Subsystem: "gateway", Name: "request_duration_seconds",
		Help:    "Time from routing to the answer being written, by route.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"route"})
	engineLat := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "surge", Subsystem: "engine", Name: "call_duration_seconds",
		Help:    "Time spent in the engine (and inventory below it) per route.",
		Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"route"})
	sheds := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "surge", Subsystem: "gateway", Name: "sheds_total",
		Help: "Requests shed by admission control, by reason.",
	}, []string{"reason"})
	m.notifyRefusedVec = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "surge", Subsystem: "wechatpay", Name: "notify_refused_total",
		Help: "WeChat Pay notifications refused (answered FAIL, WeChat Pay sends them again), by reason.",
	}, []string{"reason"})
	m.adminActions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "surge", Name: "admin_actions_total",
		Help: "Admin actions carried out (catalog load, sale or deal create, pause, resume, end), by action.",
	}, []string{"action"})
	bi := buildinfo.Get()
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "surge", Name: "build_info",
		Help:        "Always 1; the labels say which build runs (as `surge version` prints).",
		ConstLabels: prometheus.Labels{"version": bi.Version, "go_version": bi.GoVersion, "commit": bi.Commit},
	})
	build.Set(1)
	for _, c := range []prometheus.Collector{requests, latency, engineLat, sheds, m.notifyRefusedVec, m.adminActions, build, &statsCollector{eng: eng}} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	m.requestsVec, m.latencyVec, m.engineVec = requests, latency, engineLat
	for i, reason := range shedReasons {
		m.sheds[i] = sheds.WithLabelValues(reason)
	}
	return m, nil
}

// newRegistry is the default registry: Go and process collectors.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(collectors.MetricsScheduler)), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// statsCollector exports the engine's Stats (order writer lag, risk
// denials, pool counts) at scrape time, at most once a second.
type statsCollector struct {
	eng Engine

	mu   sync.Mutex
	last time.Time
	st   []prometheus.Metric
}

var (
	descOrdersWritten = prometheus.NewDesc("surge_orders_written", "Orders in the order store, all time.", nil, nil)
	descOrdersLag     = prometheus.NewDesc("surge_orders_lag", "Paid reservations whose order is not written yet.", nil, nil)
	descOrdersOldest  = prometheus.NewDesc("surge_orders_lag_oldest_seconds", "Age of the oldest order not written yet (orders through the store's outbox; 0 otherwise).", nil, nil)
	descOrdersFail    = prometheus.NewDesc("surge_orders_write_failures_total", "Failed order-store writes (retried), all time.", nil, nil)
	descRiskDenials   = prometheus.NewDesc("surge_risk_denials_total", "Risk-hook denials by reason.", []string{"reason"}, nil)
	descPool          = prometheus.NewDesc("surge_pool_units", "Units of a sale or deal pool by state.", []string{"kind", "id", "state"}, nil)
	descRefundsOpen   = prometheus.NewDesc("surge_payments_refunds_open", "Refunds recorded and not finished yet (late payments, failed teams; WeChat Pay).", nil, nil)
	descStatsUp       = prometheus.NewDesc("surge_engine_stats_up", "1 when the engine answered Stats at the last scrape.", nil, nil)
	descCircuit       = prometheus.NewDesc("surge_backend_circuit_state", "A backend's circuit breaker: 0 closed, 1 half-open (probing), 2 open (calls refused at once).", []string{"backend"}, nil)
	descCircuitOpens  = prometheus.NewDesc("surge_backend_circuit_opens_total", "How often a backend's circuit opened.", []string{"backend"}, nil)
	descBackendFails  = prometheus.NewDesc("surge_backend_failures_total", "Backend calls that failed (not an answer: refused, timed out, disk error).", []string{"backend"}, nil)
	descDataLost      = prometheus.NewDesc("surge_records_data_lost", "1 while the records' data loss (a Redis restarted empty) is not recovered: reservations are refused until POST /admin/v1/recover.", nil, nil)
	descDataLostAt    = prometheus.NewDesc("surge_records_data_lost_timestamp_seconds", "When this node saw the records lose their data (0 when none).", nil, nil)
	descStatsMissing  = prometheus.NewDesc("surge_stats_missing", "Parts of the stats that could not be read at the last scrape (pools gone or their backend down).", nil, nil)
)

// circuitStates is the value of surge_backend_circuit_state per state.
var circuitStates = map[string]float64{"closed": 0, "half-open": 1, "open": 2}

// statsTimeout bounds the engine Stats call of a scrape.
const statsTimeout = 2 * time.Second

// poolsExportedMax bounds the pools exported per kind.
const poolsExportedMax = 1000

func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descOrdersWritten, descOrdersLag, descOrdersOldest, descOrdersFail, descRiskDenials, descPool, descRefundsOpen, descStatsUp,
		descCircuit, descCircuitOpens, descBackendFails, descDataLost, descDataLostAt, descStatsMissing} {
		ch <- d
	}
}

func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.last) >= time.Second || c.st == nil {
		c.st = c.collect()
		c.last = time.Now()
	}
	for _, m := range c.st {
		ch <- m
	}
}

func (c *statsCollector) collect() []prometheus.Metric {
	ctx, cancel := context.WithTimeout(context.Background(), statsTimeout)
	defer cancel()
	st, err := c.eng.Stats(ctx)
	if err != nil {
		return []prometheus.Metric{prometheus.MustNewConstMetric(descStatsUp, prometheus.GaugeValue, 0)}
	}
	out := []prometheus.Metric{
		prometheus.MustNewConstMetric(descStatsUp, prometheus.GaugeValue, 1),
		prometheus.MustNewConstMetric(descOrdersWritten, prometheus.GaugeValue, float64(st.Orders.Written)),
		prometheus.MustNewConstMetric(descOrdersLag, prometheus.GaugeValue, float64(st.Orders.Lag)),
		prometheus.MustNewConstMetric(descOrdersOldest, prometheus.GaugeValue, float64(st.Orders.LagOldestMs)/1000),
		prometheus.MustNewConstMetric(descOrdersFail, prometheus.CounterValue, float64(st.Orders.Failures)),
		prometheus.MustNewConstMetric(descRefundsOpen, prometheus.GaugeValue, float64(st.Payments.RefundsOpen)),
		prometheus.MustNewConstMetric(descStatsMissing, prometheus.GaugeValue, float64(len(st.Missing))),
	}
	lost, lostAt := 0.0, 0.0
	if st.DataLost != nil {
		lost, lostAt = 1, float64(st.DataLost.At.UnixMilli())/1000
	}
	out = append(out,
		prometheus.MustNewConstMetric(descDataLost, prometheus.GaugeValue, lost),
		prometheus.MustNewConstMetric(descDataLostAt, prometheus.GaugeValue, lostAt))
	for _, c := range st.Circuits {
		out = append(out,
			prometheus.MustNewConstMetric(descCircuit, prometheus.GaugeValue, circuitStates[c.State], c.Backend),
			prometheus.MustNewConstMetric(descCircuitOpens, prometheus.CounterValue, float64(c.Opens), c.Backend),
			prometheus.MustNewConstMetric(descBackendFails, prometheus.CounterValue, float64(c.Failures), c.Backend))
	}
	for reason, n := range st.RiskDenials {
		out = append(out, prometheus.MustNewConstMetric(descRiskDenials, prometheus.CounterValue, float64(n), reason))
	}
	for _, kp := range []struct {
		kind  string
		pools map[string]engine.PoolStats
	}{{"sale", st.Sales}, {"deal", st.Deals}} {
		n := 0
		for id, p := range kp.pools {
			if n == poolsExportedMax {
				break
			}
			n++
			out = append(out,
				prometheus.MustNewConstMetric(descPool, prometheus.GaugeValue, float64(p.Supplied), kp.kind, id, "supplied"),
				prometheus.MustNewConstMetric(descPool, prometheus.GaugeValue, float64(p.Held), kp.kind, id, "held"),
				prometheus.MustNewConstMetric(descPool, prometheus.GaugeValue, float64(p.Sold), kp.kind, id, "sold"),
				prometheus.MustNewConstMetric(descPool, prometheus.GaugeValue, float64(p.Remaining), kp.kind, id, "remaining"),
			)
		}
	}
	return out
}
