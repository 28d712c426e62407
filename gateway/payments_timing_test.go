package gateway

import (
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine"
	"github.com/surge-retail/surge/internal/wechatpay"
	"github.com/surge-retail/surge/internal/wechatpay/wechatpaytest"
	"github.com/surge-retail/surge/inventory"
	"github.com/valyala/fasthttp"
)

// BenchmarkNotifyPay is a WeChat Pay payment notification handled by the
// gateway: verify the signature, timestamp and nonce, decrypt the
// resource, check it against the reservation and pay it (confirm, order
// handed to the writer), on the memory backend, one fresh held and
// prepaid reservation per op. Its floor, measured in the same run over the
// same notifications, is the crypto no handler can skip: the SHA256-RSA
// verify and the AES-256-GCM open (floor-ns/op; of-floor is ns/op over
// floor-ns/op, lower is better). Each op needs a prepay at the fake WeChat
// Pay first (RSA on both sides, outside the timer), so run it with a
// small -benchtime such as 1000x.
func BenchmarkNotifyPay(b *testing.B) {
	wx, err := wechatpaytest.Start(wechatpaytest.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer wx.Close()
	client, err := wechatpay.New(wx.Config())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	store := inventory.NewMemory(inventory.Options{})
	defer store.Close()
	eng, err := engine.Open(ctx, engine.Options{Store: store, WeChatPay: client, PayNotifyURL: "http://127.0.0.1:1/notify",
		SweepInterval: -1, SaleAdmitFactor: -1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	var cat engine.Catalog
	if err := json.Unmarshal([]byte(testCatalog), &cat); err != nil {
		b.Fatal(err)
	}
	cat.Listings[0].OnHand = 10_000_000 // s1/k1: room for any b.N
	if _, err := eng.LoadCatalog(ctx, cat); err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	if _, err := eng.CreateFlashSale(ctx, engine.FlashSaleSpec{SaleID: "bench", StoreID: "s1", SKUID: "k1", Price: 9900,
		Quantity: int64(b.N), StartsAt: now.Add(-time.Second), EndsAt: now.Add(time.Hour), HoldSeconds: 3600}); err != nil {
		b.Fatal(err)
	}
	s, err := New(Options{Engine: eng, WeChatPay: client.Verifier(), AdminToken: testAdminToken, FeedSecret: testFeedSecret,
		SessionSecret: []byte("session-secret-for-tests"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}

	// One prepaid reservation and its notification per op, made ahead.
	type note struct {
		hdr  wechatpay.SignatureHeaders
		body []byte
	}
	notes := make([]note, b.N)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var setupErr error
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < b.N; i += 8 {
				user := fmt.Sprintf("oBench%07d", i)
				r, err := eng.ReserveFlash(ctx, engine.Attempt{UserID: user}, "bench", 1, "")
				if err == nil {
					_, err = eng.Prepay(ctx, user, r.ReservationID)
				}
				var tx wechatpay.Transaction
				if err == nil {
					tx, err = wx.Pay(engine.OutTradeNo(r.ReservationID))
				}
				if err != nil {
					mu.Lock()
					setupErr = err
					mu.Unlock()
					return
				}
				h, body := wx.PaymentNotification(tx)
				notes[i] = note{wechatpay.HeadersFromHTTP(h), body}
			}
		}()
	}
	wg.Wait()
	if setupErr != nil {
		b.Fatal(setupErr)
	}

	// The floor over the same notifications.
	block, _ := aes.NewCipher(wx.APIv3Key)
	aead, _ := cipher.NewGCM(block)
	pub := wx.PlatformPublicKey()
	type sealed struct{ ct, nonce, ad string }
	res := make([]sealed, b.N)
	for i, n := range notes {
		var env wechatpay.Notification
		if err := json.Unmarshal(n.body, &env); err != nil {
			b.Fatal(err)
		}
		res[i] = sealed{env.Resource.Ciphertext, env.Resource.Nonce, env.Resource.AssociatedData}
	}
	floorStart := time.Now()
	for i, n := range notes {
		sig, _ := base64.StdEncoding.DecodeString(n.hdr.Signature)
		sum := sha256.Sum256(wechatpay.ResponseMessage(n.hdr.Timestamp, n.hdr.Nonce, n.body))
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
			b.Fatal(err)
		}
		ct, _ := base64.StdEncoding.DecodeString(res[i].ct)
		if _, err := aead.Open(ct[:0], []byte(res[i].nonce), ct, []byte(res[i].ad)); err != nil {
			b.Fatal(err)
		}
	}
	floor := time.Since(floorStart)

	var rc fasthttp.RequestCtx
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		rc.Request.Reset()
		rc.Response.Reset()
		rc.Request.Header.SetMethod("POST")
		rc.Request.SetRequestURI(notifyPath)
		rc.Request.Header.Set(wechatpay.HeaderTimestamp, notes[i].hdr.Timestamp)
		rc.Request.Header.Set(wechatpay.HeaderNonce, notes[i].hdr.Nonce)
		rc.Request.Header.Set(wechatpay.HeaderSignature, notes[i].hdr.Signature)
		rc.Request.Header.Set(wechatpay.HeaderSerial, notes[i].hdr.Serial)
		rc.Request.SetBody(notes[i].body)
		s.handle(&rc)
		if rc.Response.StatusCode() != 204 {
			b.Fatalf("notification %d answered %d %s", i, rc.Response.StatusCode(), rc.Response.Body())
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	surgeNs := float64(elapsed.Nanoseconds()) / float64(b.N)
	floorNs := float64(floor.Nanoseconds()) / float64(b.N)
	b.ReportMetric(floorNs, "floor-ns/op")
	b.ReportMetric(surgeNs/floorNs, "of-floor")
	if st, err := eng.Stats(ctx); err == nil && st.Sales["bench"].Sold != int64(b.N) {
		b.Fatalf("sold %d after %d notifications", st.Sales["bench"].Sold, b.N)
	}
}
