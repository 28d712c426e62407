package wechatpay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Client calls WeChat Pay API v3 as one merchant. It is safe for
// concurrent use.
type Client struct {
	cfg      Config // with defaults
	http     *http.Client
	verifier *Verifier
}

// New checks cfg (see Config.Validate), fills its defaults and returns a
// Client.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	v, err := NewVerifier(cfg)
	if err != nil {
		return nil, err
	}
	hc := cfg.HTTPClient
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 64
		hc = &http.Client{Transport: tr}
	}
	return &Client{cfg: cfg, http: hc, verifier: v}, nil
}

// Config returns the client's config with its defaults filled in.
func (c *Client) Config() Config { return c.cfg }

// Verifier returns the notification verifier made from the client's
// config (one nonce memory per Client).
func (c *Client) Verifier() *Verifier { return c.verifier }

// String describes the client without its secrets.
func (c *Client) String() string { return "wechatpay.Client{" + c.cfg.String() + "}" }

// GoString is String, so that %#v does not print the secrets.
func (c *Client) GoString() string { return c.String() }

// do makes one signed call of pathAndQuery with in as its JSON body (nil:
// no body), verifies a 2xx answer's signature and decodes it into out (nil:
// ignored). Errors: ErrUnavailable (transport, timeout, 5xx, 429),
// *APIError (other non-2xx), ErrBadSignature/ErrUnknownSerial/
// ErrStaleTimestamp (an answer not signed by WeChat Pay), ErrBadResponse.
func (c *Client) do(ctx context.Context, method, pathAndQuery string, in, out any) error {
	op := method + " " + pathAndQuery
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("wechatpay: %s: cannot encode request: %w", op, err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.cfg.BaseURL+pathAndQuery, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("wechatpay: %s: %w", op, err)
	}
	auth, err := SignRequest(c.cfg.MerchantKey, c.cfg.MchID, c.cfg.MerchantSerial, method,
		req.URL.RequestURI(), strconv.FormatInt(time.Now().Unix(), 10), NewNonce(), body)
	if err != nil {
		return fmt.Errorf("wechatpay: %s: %w", op, err)
	}
	req.Header.Set("Authorization", auth.String())
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", c.cfg.UserAgent)

	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("wechatpay: %s: %w: %w", op, ErrUnavailable, err)
	}
	defer resp.Body.Close()
	data, err := readBounded(resp.Body, MaxBodyBytes)
	if errors.Is(err, ErrTooLarge) {
		return fmt.Errorf("wechatpay: %s: %w: %w", op, ErrBadResponse, err)
	}
	if err != nil {
		return fmt.Errorf("wechatpay: %s: reading the answer: %w: %w", op, ErrUnavailable, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("wechatpay: %s: %w", op, apiError(resp, data))
	}
	if err := c.verifier.verifySignature(HeadersFromHTTP(resp.Header), data, time.Now()); err != nil {
		return fmt.Errorf("wechatpay: %s: answer refused: %w", op, err)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("wechatpay: %s: %w: %v", op, ErrBadResponse, err)
		}
	}
	return nil
}

// readBounded reads r to its end, failing with ErrTooLarge past max bytes.
func readBounded(r io.Reader, max int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%w: over %d bytes", ErrTooLarge, max)
	}
	return data, nil
}

func apiError(resp *http.Response, data []byte) *APIError {
	e := &APIError{Status: resp.StatusCode, RequestID: resp.Header.Get(HeaderRequestID)}
	var body struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	if json.Unmarshal(data, &body) == nil && body.Code != "" {
		e.Code, e.Message = body.Code, body.Message
	} else {
		e.Code = http.StatusText(resp.StatusCode)
		const quoteMax = 200 // a proxy's HTML error page is not worth more
		if len(data) > quoteMax {
			data = data[:quoteMax]
		}
		e.Message = string(data)
	}
	return e
}
