package engine

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestRiskLinks: a farm of 50 accounts on one device is refused past the
// configured count (and, once over it, the device's first accounts too); a
// household of 3 accounts behind one address is not; the counts slide
// with the window; devices per address catch a rotator (a new device id per
// attempt), and an attempt without a device counts its account.
func TestRiskLinks(t *testing.T) {
	clock := newAnswerClock()
	h, err := NewRiskHook(RiskConfig{Weights: RiskWeights{FlashPageTokenMissing: 40}, AccountsPerDevice: 5, DevicesPerIP: 10, LinkWindow: 10 * time.Minute, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	// The farm: 50 accounts on one phone, each from its own address.
	allowed := 0
	for i := range 50 {
		if h.Check(context.Background(), riskIn(fmt.Sprintf("farm%02d", i), fmt.Sprintf("10.0.%d.1", i), "phone-1")).Allow {
			allowed++
		}
	}
	if allowed != 5 {
		t.Fatalf("farm accounts allowed on one device = %d; want 5", allowed)
	}
	riskWant(t, h, riskIn("farm49", "10.0.49.1", "phone-1"), false, RiskReasonDeviceAccounts)
	// Past the threshold the phone is a farm: its first accounts are
	// refused too while the window holds.
	riskWant(t, h, riskIn("farm00", "10.0.0.1", "phone-1"), false, RiskReasonDeviceAccounts)
	// A household: 3 accounts, 3 phones, one address, again and again.
	for round := range 10 {
		for i := range 3 {
			riskWant(t, h, riskIn(fmt.Sprintf("home%d", i), "192.168.1.7", fmt.Sprintf("home-phone-%d", i)), true, "")
		}
		_ = round
	}
	// A rotator: a new device id per attempt from one address.
	for i := range 10 {
		riskWant(t, h, riskIn("rot", "172.16.0.9", fmt.Sprintf("rot-%d", i)), true, "")
	}
	riskWant(t, h, riskIn("rot", "172.16.0.9", "rot-10"), false, RiskReasonIPDevices)
	// Without a device, each account counts as one on its address.
	for i := range 10 {
		riskWant(t, h, riskIn(fmt.Sprintf("nodev%d", i), "172.16.0.10", ""), true, "")
	}
	riskWant(t, h, riskIn("nodev10", "172.16.0.10", ""), false, RiskReasonIPDevices)
	// Past the window the farm's phone counts afresh.
	clock.Advance(11 * time.Minute)
	riskWant(t, h, riskIn("farm30", "10.0.30.1", "phone-1"), true, "")
}

// TestRiskLinksBounded: the devices and addresses tracked are bounded (the
// least recently seen forgotten), and so is what one of them remembers,
// under concurrent attempts.
func TestRiskLinksBounded(t *testing.T) {
	clock := newAnswerClock()
	const keysMax = 256
	hook, err := NewRiskHook(RiskConfig{PageTokenOff: true, AccountsPerDevice: 3, DevicesPerIP: 3, KeysMax: keysMax, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	c := hook.(*riskChain)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5000 {
				c.Check(context.Background(), riskIn(fmt.Sprintf("u%d-%d", g, i), fmt.Sprintf("10.%d.%d.%d", g, i/250, i%250), fmt.Sprintf("d%d", i%700)))
			}
		}()
	}
	wg.Wait()
	if n := c.links.devices.Len(); n > keysMax+lruShards {
		t.Fatalf("devices tracked = %d; want at most about %d", n, keysMax)
	}
	if n := c.links.ips.Len(); n > keysMax+lruShards {
		t.Fatalf("addresses tracked = %d; want at most about %d", n, keysMax)
	}
	set := c.links.devices.GetOrAdd("d1", func() *linkSet { return &linkSet{} })
	set.mu.Lock()
	kept := len(set.ids)
	set.mu.Unlock()
	if kept > 4 {
		t.Fatalf("one device remembers %d accounts; want at most threshold+1 = 4", kept)
	}
}

// TestRiskLinksReachTheWebhook: the webhook receives the linkage counts.
func TestRiskLinksReachTheWebhook(t *testing.T) {
	srv, got, _ := riskServer(t)
	h, err := NewRiskHook(RiskConfig{PageTokenOff: true, AccountsPerDevice: 5, DevicesPerIP: 10, WebhookURL: srv.URL, WebhookTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	riskWant(t, h, riskIn("allow", "10.9.9.9", "shared"), true, "")
	<-got
	riskWant(t, h, riskIn("allow", "10.9.9.9", "shared2"), true, "")
	second := <-got
	if second.DeviceAccounts != 1 || second.IPDevices != 2 {
		t.Fatalf("webhook signals = device_accounts %d, ip_devices %d; want 1 and 2", second.DeviceAccounts, second.IPDevices)
	}
}
