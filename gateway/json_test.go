package gateway

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/surge-retail/surge/engine"
)

func TestDecodeStrict(t *testing.T) {
	f := func(body string, emptyOK, wantOK bool) {
		t.Helper()
		var r reserveReq
		err := decodeStrict([]byte(body), &r, emptyOK)
		if (err == nil) != wantOK {
			t.Errorf("decodeStrict(%q) = %v; want ok=%v", body, err, wantOK)
		}
		var ae *apiError
		if err != nil && (!errors.As(err, &ae) || ae.code != CodeBadRequest) {
			t.Errorf("decodeStrict(%q) = %v; want a 40000", body, err)
		}
	}
	f(`{"quantity":1}`, false, true)
	f(` {"quantity":1,"guide_id":"g1"} `, false, true)
	f(`{}`, false, true)
	f(``, false, false)
	f(``, true, true)
	f(`  `, true, true)
	f(`{`, false, false)
	f(`{"quantity":1`, false, false)
	f(`{"quantity":"1"}`, false, false)
	f(`{"quantity":1.5}`, false, false)
	f(`{"quantity":1e3}`, false, false)
	f(`{"quantity":99999999999999999999999}`, false, false)
	f(`{"quantity":1,"extra":true}`, false, false)
	f(`{"quantity":1}{"quantity":2}`, false, false)
	f(`{"quantity":1} x`, false, false)
	f(`[1]`, false, false)
	f(`null`, false, false)
	f(`"x"`, false, false)
	f(`{"guide_id":"\xff"}`, false, false)
	f(`{"guide_id":1}`, false, false)
	f("{\"quantity\":1,}", false, false)

	var c engine.CheckoutRequest
	if err := decodeStrict([]byte(`{"store_id":"s1","items":[{"sku_id":"k1","quantity":2,"color":"red"}]}`), &c, false); err == nil {
		t.Error("unknown nested field accepted")
	}
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"", "plain", `q"uote`, `back\slash`, "ctl\x00\x1f\n", "中文", "bad\xffutf8", "<html>&"} {
		b := appendJSONString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Errorf("appendJSONString(%q) = %s: not JSON: %v", s, b, err)
			continue
		}
		if want := strings.ToValidUTF8(s, "\ufffd"); got != want {
			t.Errorf("appendJSONString(%q) decodes to %q; want %q", s, got, want)
		}
	}
}

func TestEnvelopes(t *testing.T) {
	b := appendErr(nil, CodeSoldOut, "sold \"out\"")
	var env struct {
		Code int    `json:"code"`
		Msg  string `json:"msg"`
	}
	if err := json.Unmarshal(b, &env); err != nil || env.Code != CodeSoldOut || env.Msg != `sold "out"` {
		t.Errorf("appendErr = %s (%v)", b, err)
	}
	if c := codeOfBody(b); c != CodeSoldOut {
		t.Errorf("codeOfBody(%s) = %d", b, c)
	}
	ok, err := appendOK(nil, map[string]int{"a": 1})
	if err != nil || string(ok) != `{"code":0,"msg":"ok","data":{"a":1}}` {
		t.Errorf("appendOK = %s, %v", ok, err)
	}
	if c := codeOfBody(ok); c != CodeOK {
		t.Errorf("codeOfBody(ok) = %d", c)
	}
	if c := codeOfBody([]byte("junk")); c != CodeInternal {
		t.Errorf("codeOfBody(junk) = %d", c)
	}
}

func TestETagMatch(t *testing.T) {
	f := func(inm, etag string, want bool) {
		t.Helper()
		if got := etagMatch([]byte(inm), etag); got != want {
			t.Errorf("etagMatch(%q, %q) = %v; want %v", inm, etag, got, want)
		}
	}
	f(`"s1-42"`, `"s1-42"`, true)
	f(`W/"s1-42"`, `"s1-42"`, true)
	f(`"a", "s1-42"`, `"s1-42"`, true)
	f(`*`, `"s1-42"`, true)
	f(`"s1-41"`, `"s1-42"`, false)
	f(`s1-42`, `"s1-42"`, false)
	f(`"s1-42`, `"s1-42"`, false)
	f(``, `"s1-42"`, false)
}
