package wechatpay_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/surge-retail/surge/internal/wechatpay"
)

func TestRequestMessage(t *testing.T) {
	got := string(wechatpay.RequestMessage("GET", "/v3/refund/domestic/refunds/RF1", "1554208460", "593BEC0C930BF1AFEB40B4A08C8FB242", nil))
	want := "GET\n/v3/refund/domestic/refunds/RF1\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n\n"
	if got != want {
		t.Fatalf("RequestMessage = %q; want %q", got, want)
	}
	if got := string(wechatpay.ResponseMessage("1", "N", []byte(`{"a":1}`))); got != "1\nN\n{\"a\":1}\n" {
		t.Fatalf("ResponseMessage = %q", got)
	}
}

func TestAuthorizationRoundTrip(t *testing.T) {
	keys := defaultKeys(t)
	body := []byte(`{"mchid":"1900000001"}`)
	a, err := wechatpay.SignRequest(keys.MerchantKey, keys.MchID, keys.MerchantSerial, "POST", "/v3/pay/transactions/out-trade-no/R1/close", "1554208460", "NONCE1", body)
	if err != nil {
		t.Fatal(err)
	}
	h := a.String()
	if !strings.HasPrefix(h, `WECHATPAY2-SHA256-RSA2048 mchid="`+keys.MchID+`",nonce_str="NONCE1",signature="`) ||
		!strings.HasSuffix(h, `",timestamp="1554208460",serial_no="`+keys.MerchantSerial+`"`) {
		t.Fatalf("Authorization = %s", h)
	}
	parsed, err := wechatpay.ParseAuthorization(h)
	if err != nil || parsed != a {
		t.Fatalf("ParseAuthorization = %+v, %v; want %+v", parsed, err, a)
	}
	if err := parsed.Verify(keys.MerchantPublicKey(), "POST", "/v3/pay/transactions/out-trade-no/R1/close", body); err != nil {
		t.Fatalf("Verify = %v", err)
	}
	if err := parsed.Verify(keys.MerchantPublicKey(), "GET", "/v3/pay/transactions/out-trade-no/R1/close", body); !errors.Is(err, wechatpay.ErrBadSignature) {
		t.Fatalf("Verify(other method) = %v; want ErrBadSignature", err)
	}
	for _, bad := range []string{
		"", "Bearer x", `WECHATPAY2-SHA256-RSA2048 mchid="1"`,
		`WECHATPAY2-SHA256-RSA2048 mchid="1",nonce_str="n",signature="s",timestamp="1",serial_no=x`,
		`WECHATPAY2-SHA256-RSA2048 mchid="1",nonce_str="n",signature="s",timestamp="1",serial_no="x",extra="y"`,
	} {
		if _, err := wechatpay.ParseAuthorization(bad); err == nil {
			t.Errorf("ParseAuthorization(%q) = nil error", bad)
		}
	}
}

func TestNewNonce(t *testing.T) {
	a, b := wechatpay.NewNonce(), wechatpay.NewNonce()
	if len(a) != 32 || a == b || strings.Trim(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != "" {
		t.Fatalf("NewNonce = %q, %q", a, b)
	}
}
