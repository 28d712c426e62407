package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// client talks to the one target over keep-alive connections and measures
// every answer from its intended send time.
type client struct {
	base    string // target without the trailing slash
	hc      *http.Client
	rec     *recorder // nil: nothing is recorded
	timeout time.Duration
}

func newClient(target string, conns int, timeout time.Duration, rec *recorder) *client {
	tr := &http.Transport{
		Proxy: nil, // never a proxy: only the named target is contacted
		DialContext: (&net.Dialer{
			Timeout:   timeout,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	return &client{
		base: strings.TrimRight(target, "/"),
		hc: &http.Client{
			Transport: tr,
			// Never follow a redirect: it could lead anywhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		rec:     rec,
		timeout: timeout,
	}
}

func (c *client) close() { c.hc.CloseIdleConnections() }

// call is one request.
type call struct {
	route       string // latency/outcome bucket; "" = not recorded
	method      string
	path        string // starts with "/"
	body        any    // marshalled as JSON when not nil
	token       string // bearer token
	device      string // X-Device-Id
	xff         string // X-Forwarded-For
	ifNoneMatch string
	idemKey     string    // Idempotency-Key
	pageToken   string    // X-Surge-Page-Token, from a store page the caller loaded
	intended    time.Time // zero: now
}

// answer is what came back.
type answer struct {
	status     int
	code       int    // envelope code; -1 when there was no envelope
	outcome    string // the code as text, "304", "timeout", "conn_error", "http_<status>"
	msg        string
	data       json.RawMessage
	etag       string
	pageToken  string        // X-Surge-Page-Token of a store page; "" when none
	retryAfter time.Duration // 0 when absent
	err        error
	done       time.Time
}

func (a answer) ok() bool { return a.outcome == "0" }

// decode unmarshals the envelope's data into v.
func (a answer) decode(v any) error {
	if len(a.data) == 0 {
		return errors.New("no data in the answer")
	}
	return json.Unmarshal(a.data, v)
}

type envelope struct {
	Code *int            `json:"code"`
	Msg  string          `json:"msg"`
	Data json.RawMessage `json:"data"`
}

// do sends q and records its outcome and latency.
func (c *client) do(ctx context.Context, q call) answer {
	if q.intended.IsZero() {
		q.intended = time.Now()
	}
	a := c.send(ctx, q)
	if c.rec != nil && q.route != "" {
		c.rec.record(q.route, q.intended, a.done, a.outcome)
	}
	return a
}

func (c *client) send(ctx context.Context, q call) answer {
	a := answer{code: -1}
	var body io.Reader
	if q.body != nil {
		b, err := json.Marshal(q.body)
		if err != nil {
			panic(fmt.Sprintf("BUG: cannot marshal a request body: %v", err))
		}
		body = bytes.NewReader(b)
	}
	rctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, q.method, c.base+q.path, body)
	if err != nil {
		panic(fmt.Sprintf("BUG: cannot build a request for %q: %v", q.path, err))
	}
	if q.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if q.token != "" {
		req.Header.Set("Authorization", "Bearer "+q.token)
	}
	if q.device != "" {
		req.Header.Set("X-Device-Id", q.device)
	}
	if q.xff != "" {
		req.Header.Set("X-Forwarded-For", q.xff)
	}
	if q.ifNoneMatch != "" {
		req.Header.Set("If-None-Match", q.ifNoneMatch)
	}
	if q.idemKey != "" {
		req.Header.Set("Idempotency-Key", q.idemKey)
	}
	if q.pageToken != "" {
		req.Header.Set(pageTokenHeader, q.pageToken)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		a.done = time.Now()
		a.err = err
		a.outcome = transportOutcome(ctx, err)
		return a
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, bodyReadBytesMax))
	resp.Body.Close()
	a.done = time.Now()
	a.status = resp.StatusCode
	a.etag = resp.Header.Get("ETag")
	a.pageToken = resp.Header.Get(pageTokenHeader)
	if s := resp.Header.Get("Retry-After"); s != "" {
		if n, perr := strconv.Atoi(strings.TrimSpace(s)); perr == nil && n >= 0 {
			a.retryAfter = time.Duration(n) * time.Second
		}
	}
	if err != nil {
		a.err = err
		a.outcome = transportOutcome(ctx, err)
		return a
	}
	if resp.StatusCode == http.StatusNotModified {
		a.outcome = outcomeNotMod
		return a
	}
	var env envelope
	if json.Unmarshal(raw, &env) == nil && env.Code != nil {
		a.code = *env.Code
		a.msg = env.Msg
		a.data = env.Data
		a.outcome = strconv.Itoa(a.code)
		return a
	}
	a.outcome = "http_" + strconv.Itoa(resp.StatusCode)
	return a
}

func transportOutcome(ctx context.Context, err error) string {
	if ctx.Err() != nil {
		return outcomeCanceled
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return outcomeTimeout
	}
	return outcomeConnError
}
