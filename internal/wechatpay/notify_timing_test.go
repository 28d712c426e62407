package wechatpay_test

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/surge-retail/surge/internal/wechatpay"
	"github.com/surge-retail/surge/internal/wechatpay/wechatpaytest"
)

var (
	sinkEvent *wechatpay.Event
	sinkBytes []byte
)

// notifications builds n distinct signed payment notifications stamped at
// one time (distinct nonces, so that the replay check accepts each).
func benchNotifications(b *testing.B, keys *wechatpaytest.Keys, n int, at time.Time) []struct {
	h    wechatpay.SignatureHeaders
	body []byte
} {
	b.Helper()
	out := make([]struct {
		h    wechatpay.SignatureHeaders
		body []byte
	}, n)
	for i := range out {
		h, body := keys.PaymentNotification(wechatpay.Transaction{
			OutTradeNo: "R" + strconv.Itoa(100000+i),
			Payer:      wechatpay.Payer{OpenID: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
			Amount:     wechatpay.TransactionAmount{Total: 1999},
		}, wechatpaytest.WithTime(at))
		out[i].h, out[i].body = wechatpay.HeadersFromHTTP(h), body
	}
	return out
}

// BenchmarkNotify is the whole of Verifier.Verify on a payment
// notification: headers, serial, SHA256-RSA verify, timestamp, envelope
// JSON, replay check and record, AES-256-GCM open, Transaction JSON.
func BenchmarkNotify(b *testing.B) {
	keys, err := wechatpaytest.DefaultKeys()
	if err != nil {
		b.Fatal(err)
	}
	at := time.Now()
	const distinct = 4096 // nonces are remembered: a fresh verifier every 4096
	notes := benchNotifications(b, keys, distinct, at)
	cfg := keys.ConfigFor("")
	cfg.NoncesMax = distinct
	newV := func() *wechatpay.Verifier {
		v, err := wechatpay.NewVerifier(cfg)
		if err != nil {
			b.Fatal(err)
		}
		return v
	}
	v := newV()
	b.SetBytes(int64(len(notes[0].body)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if i%distinct == 0 && i > 0 {
			b.StopTimer()
			v = newV()
			b.StartTimer()
		}
		n := notes[i%distinct]
		ev, err := v.Verify(n.h, n.body, at)
		if err != nil {
			b.Fatal(err)
		}
		sinkEvent = ev
	}
}

// BenchmarkNotifyFloor is the crypto Verify cannot avoid on the same
// message: the SHA-256 and rsa.VerifyPKCS1v15 of the signed message and
// the AES-256-GCM Open of the resource (decoding their base64 included,
// with the key schedule and message built ahead).
func BenchmarkNotifyFloor(b *testing.B) {
	keys, err := wechatpaytest.DefaultKeys()
	if err != nil {
		b.Fatal(err)
	}
	n := benchNotifications(b, keys, 1, time.Now())[0]
	var note wechatpay.Notification
	if err := json.Unmarshal(n.body, &note); err != nil {
		b.Fatal(err)
	}
	msg := wechatpay.ResponseMessage(n.h.Timestamp, n.h.Nonce, n.body)
	block, _ := aes.NewCipher(keys.APIv3Key)
	aead, _ := cipher.NewGCM(block)
	pub := keys.PlatformPublicKey()
	nonce, ad := []byte(note.Resource.Nonce), []byte(note.Resource.AssociatedData)
	b.SetBytes(int64(len(n.body)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		sig, _ := base64.StdEncoding.DecodeString(n.h.Signature)
		sum := sha256.Sum256(msg)
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
			b.Fatal(err)
		}
		sealed, _ := base64.StdEncoding.DecodeString(note.Resource.Ciphertext)
		plain, err := aead.Open(sealed[:0], nonce, sealed, ad)
		if err != nil {
			b.Fatal(err)
		}
		sinkBytes = plain
	}
}
