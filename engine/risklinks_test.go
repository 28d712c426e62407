package engine

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestRiskLinks: a farm of 50 accounts on one device is refused past the
// configured count (and, once over it, the device's first accounts too); a
// household of 3 accounts behind one address is not; the counts slide
// with the window; devices per address catch a rotator (a new device id per
// attempt), and an attempt without a device counts its account. The counts
// here are cliffs (nothing free below the thresholds); TestRiskLinksGraded
// has the defaults' grades.
func TestRiskLinks(t *testing.T) {
	clock := newAnswerClock()
	h, err := NewRiskHook(RiskConfig{Weights: RiskWeights{FlashPageTokenMissing: 40}, AccountsPerDevice: 5, DevicesPerIP: 10,
		DeviceAccountsFree: 5, IPDevicesFree: 10, LinkWindow: 10 * time.Minute, Now: clock.Now})
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
	// An eviction runs in the background: while it runs the maps may hold
	// up to hardMax (keysMax and an eighth) plus the inserts in flight, one
	// per goroutine; once it has run they are within keysMax.
	for _, m := range []struct {
		what string
		m    *touchMap[string, *linkSet]
	}{{"devices", c.links.devices}, {"addresses", c.links.ips}} {
		if n, hard := m.m.Len(), m.m.hardMax()+8; int64(n) > hard {
			t.Fatalf("%s tracked = %d; want at most %d (%d, an eighth, and 8 in flight)", m.what, n, hard, keysMax)
		}
		m.m.evict()
		if n := m.m.Len(); n > keysMax {
			t.Fatalf("%s tracked after an eviction = %d; want at most %d", m.what, n, keysMax)
		}
	}
	set := c.links.devices.GetOrAdd("d1", clock.Now().UnixMilli(), func() *linkSet { return &linkSet{} })
	if kept := set.len(); kept > 4 {
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

// TestLinkGrade: nothing up to free, a step a count up to the threshold,
// the full weight past it; free at the threshold is a cliff.
func TestLinkGrade(t *testing.T) {
	for _, c := range []struct{ n, free, threshold, w, want int }{
		{0, 2, 5, 100, 0}, {2, 2, 5, 100, 0}, {3, 2, 5, 100, 25}, {4, 2, 5, 100, 50}, {5, 2, 5, 100, 75}, {6, 2, 5, 100, 100}, {50, 2, 5, 100, 100},
		{10, 10, 30, 60, 0}, {11, 10, 30, 60, 2}, {25, 10, 30, 60, 42}, {30, 10, 30, 60, 57}, {31, 10, 30, 60, 60}, {200, 10, 30, 60, 60},
		{5, 5, 5, 100, 0}, {6, 5, 5, 100, 100}, {1, 0, 3, 40, 10},
	} {
		if got := linkGrade(c.n, c.free, c.threshold, c.w); got != c.want {
			t.Errorf("linkGrade(%d, free %d, threshold %d, weight %d) = %d; want %d", c.n, c.free, c.threshold, c.w, got, c.want)
		}
	}
}

// gradedHook is the built-in hook with `surge serve`'s linkage defaults
// (5 accounts a device, 30 devices an address, the grades' defaults) and
// page tokens left unjudged: only the linkage signals score.
func gradedHook(t *testing.T, clock *answerClock) *riskChain {
	t.Helper()
	h, err := NewRiskHook(RiskConfig{AccountsPerDevice: 5, DevicesPerIP: 30, PageTokenOff: true, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return h.(*riskChain)
}

// TestRiskLinksGraded: with the defaults, each linkage count weighs more
// the higher it is, and the two together (farm_shape) deny a farm that
// stays just under both thresholds, while a family phone, a household and
// a campus NAT pass. Every case on its own device and address.
func TestRiskLinksGraded(t *testing.T) {
	clock := newAnswerClock()
	c := gradedHook(t, clock)
	w := RiskWeightsDefault
	none := []string{}

	// A family phone: 2 accounts, one device, one address, again and again.
	for range 5 {
		for i := range 2 {
			scoreOf(t, c, riskIn(fmt.Sprintf("fam%d", i), "192.168.7.1", "family-phone"), none, 0, true)
		}
	}
	// A household: 3 accounts on 3 phones behind one address.
	for range 5 {
		for i := range 3 {
			scoreOf(t, c, riskIn(fmt.Sprintf("home%d", i), "192.168.7.2", fmt.Sprintf("home-phone-%d", i)), none, 0, true)
		}
	}
	// A device shared by more accounts on a quiet address: each account
	// past the free two weighs a quarter more, the sixth denies alone.
	dev := []string{RiskReasonDeviceAccounts}
	for i, want := range []int{0, 0, 25, 50, 75, 100} {
		sig := none
		if want > 0 {
			sig = dev
		}
		scoreOf(t, c, riskIn(fmt.Sprintf("shared%d", i), "192.168.7.3", "shared-phone"), sig, want, want < 100)
	}
	// A campus NAT: 200 devices, one account each, behind one address:
	// the address weighs up to its full weight (60), never a denial.
	for i := range 200 {
		in := riskIn(fmt.Sprintf("campus%03d", i), "100.64.9.9", fmt.Sprintf("campus-phone-%03d", i))
		sig := c.measure(&in, c.now())
		if sig.Score >= c.scoreDeny || sig.Score > w.IPDevices {
			t.Fatalf("campus device %d scored %d (%q); want at most %d, allowed", i, sig.Score, sig.list(), w.IPDevices)
		}
	}
	// A family phone behind the campus NAT: still allowed.
	for range 3 {
		for i := range 2 {
			scoreOf(t, c, riskIn(fmt.Sprintf("natfam%d", i), "100.64.9.9", "nat-family-phone"), []string{RiskReasonIPDevices}, w.IPDevices, true)
		}
	}

	// The mimic's farm: 4 accounts a device, 25 devices an address (just
	// under both thresholds). Once its shape is seen, every attempt of it
	// weighs device 50 + address 42 + farm_shape 50 and is denied, the
	// first accounts of each device too.
	mimic := func(d, a int) RiskInput {
		return riskIn(fmt.Sprintf("mimic-d%02d-a%d", d, a), "10.6.0.1", fmt.Sprintf("mimic-phone-%02d", d))
	}
	allowedFirst := 0
	for d := range 25 {
		for a := range 4 {
			if in := mimic(d, a); c.Check(context.Background(), in).Allow {
				allowedFirst++
			}
		}
	}
	for d := range 25 {
		for a := range 4 {
			scoreOf(t, c, mimic(d, a), []string{RiskReasonDeviceAccounts, RiskReasonIPDevices, RiskReasonFarmShape},
				w.DeviceAccounts/2+w.IPDevices*15/21+w.FarmShape, false)
		}
	}
	riskWant(t, c, mimic(0, 0), false, RiskReasonDeviceAccounts)
	// Counted at reserves only, the first pass lets through what does not
	// yet look like a farm: all 4 accounts of the first 10 devices (the
	// address is not crowded yet), 3 of devices 10-17 (the fourth weighs
	// 50 + 2.. + 50), 2 of devices 18-24 (the third weighs 25 + 25.. + 50):
	// 40 + 24 + 14. TestRiskLinksLogins: counted at logins, none.
	if allowedFirst != 78 {
		t.Errorf("mimic attempts allowed on the first pass = %d; want 78", allowedFirst)
	}
	t.Logf("mimic farm, counted at reserves only: %d of 100 first attempts allowed, every later one denied", allowedFirst)
}

// TestRiskLinksLogins: logins count the links, so a farm whose accounts
// logged in on their shared devices is denied from its first reserve on,
// while humans who logged in the same way are not; logins without a device
// count nothing; LinkLoginsOff counts only reserves.
func TestRiskLinksLogins(t *testing.T) {
	clock := newAnswerClock()
	c := gradedHook(t, clock)
	login := func(c RiskLoginObserver, user, ip, device string) {
		c.ObserveLogin(RiskInput{Attempt: Attempt{UserID: user, IP: ip, DeviceID: device, Route: "session"}})
	}
	for d := range 25 {
		for a := range 4 {
			login(c, fmt.Sprintf("mimic-d%02d-a%d", d, a), "10.6.0.1", fmt.Sprintf("mimic-phone-%02d", d))
		}
	}
	for i := range 3 {
		login(c, fmt.Sprintf("home%d", i), "192.168.7.2", fmt.Sprintf("home-phone-%d", i))
	}
	for i := range 50 {
		login(c, fmt.Sprintf("nodev%d", i), "192.168.7.3", "")
	}
	for d := range 25 {
		for a := range 4 {
			riskWant(t, c, riskIn(fmt.Sprintf("mimic-d%02d-a%d", d, a), "10.6.0.1", fmt.Sprintf("mimic-phone-%02d", d)), false, RiskReasonDeviceAccounts)
		}
	}
	for i := range 3 {
		scoreOf(t, c, riskIn(fmt.Sprintf("home%d", i), "192.168.7.2", fmt.Sprintf("home-phone-%d", i)), []string{}, 0, true)
	}
	// 50 logins without a device left the address uncounted: one reserve
	// from it is one device.
	scoreOf(t, c, riskIn("nodev0", "192.168.7.3", "nodev-phone"), []string{}, 0, true)
	if in := riskIn("nodev0", "192.168.7.3", "nodev-phone"); c.measure(&in, c.now()).IPDevices != 1 {
		t.Errorf("logins without a device were counted on their address")
	}

	off, err := NewRiskHook(RiskConfig{AccountsPerDevice: 5, DevicesPerIP: 30, PageTokenOff: true, LinkLoginsOff: true, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	for a := range 4 {
		login(off.(*riskChain), fmt.Sprintf("farm%d", a), "10.6.0.2", "farm-phone")
	}
	scoreOf(t, off.(*riskChain), riskIn("farm0", "10.6.0.2", "farm-phone"), []string{}, 0, true)
}

// TestLoginSeenThroughTheEngine: Engine.LoginSeen reaches the built-in
// hook (the gateway calls it for every session it issues).
func TestLoginSeenThroughTheEngine(t *testing.T) {
	clock := newAnswerClock()
	c := gradedHook(t, clock)
	e := riskEngine(t, c, clock, "")
	for a := range 6 {
		e.LoginSeen(Attempt{UserID: fmt.Sprintf("farm%d", a), IP: "10.6.0.3", DeviceID: "farm-phone", Route: "session"})
	}
	riskWant(t, c, riskIn("farm0", "10.6.0.3", "farm-phone"), false, RiskReasonDeviceAccounts)
}

// TestRiskLinksConcurrentFarm: a farm's accounts hammering one device and
// one address at once (the link sets' lock-free reads and copy-on-write
// joins) get what one at a time would: the sets never remember more than
// the threshold plus one ids, exactly the first AccountsPerDevice accounts
// to join are ever allowed, and once the farm is seen every one of its
// accounts is refused; the address's devices likewise.
func TestRiskLinksConcurrentFarm(t *testing.T) {
	clock := newAnswerClock()
	const perDevice, perIP = 5, 10
	hook, err := NewRiskHook(RiskConfig{PageTokenOff: true, AccountsPerDevice: perDevice, DevicesPerIP: perIP,
		DeviceAccountsFree: perDevice, IPDevicesFree: perIP, Weights: RiskWeights{IPDevices: 100}, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	c := hook.(*riskChain)
	const accounts, attempts = 64, 200
	var over atomic.Int64
	stop := make(chan struct{})
	var watch sync.WaitGroup
	watch.Add(1)
	go func() { // the sets' sizes, while the farm runs
		defer watch.Done()
		for {
			if dev, ok := c.links.devices.Get("phone", 0); ok && dev.len() > perDevice+1 {
				over.Add(1)
			}
			if ip, ok := c.links.ips.Get("10.1.1.1", 0); ok && ip.len() > perIP+1 {
				over.Add(1)
			}
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	var wg sync.WaitGroup
	var allowed [accounts]atomic.Bool
	start := make(chan struct{}) // all at once: joins meet under the lock
	for a := range accounts {
		for range 2 { // an account of the farm's phone, from two apps at once
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for range attempts {
					if hook.Check(context.Background(), riskIn(fmt.Sprintf("farm%02d", a), fmt.Sprintf("10.0.%d.1", a), "phone")).Allow {
						allowed[a].Store(true)
					}
				}
			}()
		}
		wg.Add(1)
		go func() { // a device of the crowded address
			defer wg.Done()
			<-start
			for range attempts {
				hook.Check(context.Background(), riskIn(fmt.Sprintf("u%02d", a), "10.1.1.1", fmt.Sprintf("dev%02d", a)))
			}
		}()
	}
	close(start)
	wg.Wait()
	close(stop)
	watch.Wait()
	if n := over.Load(); n != 0 {
		t.Fatalf("a link set held more than its threshold plus one ids %d times", n)
	}
	allowedAccounts := 0
	for a := range allowed {
		if allowed[a].Load() {
			allowedAccounts++
		}
	}
	if n := allowedAccounts; n != perDevice {
		t.Fatalf("farm accounts ever allowed = %d; want exactly %d (the first to join)", n, perDevice)
	}
	dev, _ := c.links.devices.Get("phone", 0)
	ip, _ := c.links.ips.Get("10.1.1.1", 0)
	if dev.len() != perDevice+1 || ip.len() != perIP+1 {
		t.Fatalf("link sets hold %d accounts and %d devices; want %d and %d", dev.len(), ip.len(), perDevice+1, perIP+1)
	}
	for a := range accounts {
		riskWant(t, hook, riskIn(fmt.Sprintf("farm%02d", a), fmt.Sprintf("10.0.%d.1", a), "phone"), false, RiskReasonDeviceAccounts)
		riskWant(t, hook, riskIn(fmt.Sprintf("u%02d", a), "10.1.1.1", fmt.Sprintf("dev%02d", a)), false, RiskReasonIPDevices)
	}
}

// TestLinkSetConcurrentChurn: goroutines sharing ids join, refresh and
// forget (a window of a few ticks of a clock they advance themselves) one
// link set at once; a snapshot never holds more than max+1 ids nor one id
// twice, and every count is between 1 and max+2 (the answer of a full
// set).
func TestLinkSetConcurrentChurn(t *testing.T) {
	const max, window, ids, workers, rounds = 5, 2 * time.Millisecond, 8, 16, 20000
	// More Ps than cores: the OS preempts a worker anywhere, also between
	// the lock-free read and the lock (on two cores with two Ps the
	// workers seldom meet there).
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4 * runtime.NumCPU()))
	var s linkSet
	var tick atomic.Int64
	base := time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)
	var bad atomic.Int64
	var fail sync.Once
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				now := base.Add(time.Duration(tick.Add(1)/4) * time.Millisecond)
				id := uint64((w/2*7 + i) % ids) // two workers per id sequence
				n := s.see(id, now, window, max)
				snap := *s.snap.Load()
				seen := map[uint64]bool{}
				dup := false
				for _, e := range snap {
					dup = dup || seen[e.id]
					seen[e.id] = true
				}
				if n < 1 || n > max+2 || len(snap) > max+1 || dup {
					bad.Add(1)
					fail.Do(func() {
						t.Errorf("see = %d, snapshot of %d ids (duplicates: %v); want 1..%d, at most %d, none", n, len(snap), dup, max+2, max+1)
					})
				}
			}
		}()
	}
	wg.Wait()
	if n := bad.Load(); n != 0 {
		t.Fatalf("%d answers out of bounds", n)
	}
}
