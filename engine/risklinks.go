package engine

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// Linkage signals of the built-in risk hook (issue 18): how many accounts
// one device has been used by, and how many devices one address has been
// used from, within a sliding window. A scalper farm runs many accounts
// per phone and many phones per address; a household shares one address
// between a few. Memory is bounded twice: the devices and addresses
// tracked (KeysMax each, least recently seen forgotten) and, per device or
// address, the ids remembered (the threshold plus one: past it the answer
// is already "too many"). A count over its threshold is a signal of the
// risk score (riskscore.go); with the default weights a device over its
// threshold is a farm: every attempt from it is refused, its first
// accounts' too, until the window has forgotten enough of them.
//
// Below the thresholds the two signals are graded (linkGrade): a count up
// to its "free" number (DeviceAccountsFree, IPDevicesFree) weighs
// nothing, then each account or device more weighs a step more, until
// the count past the threshold weighs the signal's full weight. A third
// signal, farm_shape, is raised when a device is shared by more accounts
// than its free number AND its address is crowded past its free number:
// a family phone, a household and a campus NAT each raise one of the
// two at most, a farm that stays just under both thresholds raises all
// three. Logins count too (observeLogin): a farm's accounts are linked to
// their device when they log in, before any of them reserves.

// Linkage reasons of the built-in hook.
const (
	RiskReasonDeviceAccounts = "device_accounts"
	RiskReasonIPDevices      = "ip_devices"
	RiskReasonFarmShape      = "farm_shape"
)

// Defaults of the graded linkage signals (RiskConfig.DeviceAccountsFree,
// IPDevicesFree).
const (
	RiskDeviceAccountsFreeDefault = 2  // a family phone
	RiskIPDevicesFreeDefault      = 10 // a household, a small shop's Wi-Fi
)

// linkGrade is the weight of a linkage count n with full weight w: 0 up to
// free, then w*(n-free)/(over-free) up to the threshold, w past it (over
// is the threshold plus one, the first count past it). free >= the
// threshold makes it a cliff: 0, then w past the threshold.
func linkGrade(n, free, threshold, w int) int {
	switch {
	case n > threshold:
		return w
	case n <= free:
		return 0
	}
	return w * (n - free) / (threshold + 1 - free)
}

// linkNoDevice tells an account counted as its own device apart from a
// device id that happens to equal the account's id.
const linkNoDevice = 0x9e3779b97f4a7c15

// RiskLinkWindowDefault is the default of RiskConfig.LinkWindow.
const RiskLinkWindowDefault = 10 * time.Minute

// linkSet remembers up to max ids seen recently under one key (a device's
// accounts, an address's devices), each with when it was last seen. An id
// is kept as its 64-bit hash: a scan compares integers, not strings.
//
// The ids are an immutable snapshot behind an atomic pointer, so that the
// common attempts read it without a lock: an id already in the set (a
// known account on its device, a known device on its address) only
// stamps its entry, and so does a set already full of live ids (its count
// is past the threshold whatever the new id). Only an id that joins takes
// the lock and writes a new snapshot (the live ids and the new one:
// forgotten ids leave then), at most max+1 entries, so it is rare and
// bounded. Readers skip the forgotten ids a snapshot still holds. The one
// difference from a lock: an id stamped by a reader of the old snapshot
// just as a writer drops it as forgotten (at the window's edge) is seen
// afresh by its next attempt.
type linkSet struct {
	mu   sync.Mutex // writers of snap
	snap atomic.Pointer[[]*linkID]
}

// linkID is one id of a set and when it was last seen (Unix ms).
type linkID struct {
	id   uint64
	seen atomic.Int64
}

// see records id at now and returns how many distinct ids the set saw
// within window, counting id; when the set is full of live ids and id is
// new, it is not kept and the count is max+1.
func (s *linkSet) see(id uint64, now time.Time, window time.Duration, max int) int {
	nowMs, cut := now.UnixMilli(), now.Add(-window).UnixMilli()
	if snap := s.snap.Load(); snap != nil {
		if live, found := scanLinks(*snap, id, nowMs, cut, nil); found || live > max {
			return linkCount(live, found)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// Again under the lock (id may have joined, or the set filled,
	// meanwhile), in one pass that keeps what it counts: a stamp a reader
	// moves meanwhile cannot make the new snapshot longer than counted.
	var old []*linkID
	if snap := s.snap.Load(); snap != nil {
		old = *snap
	}
	ids := make([]*linkID, 0, len(old)+1)
	if live, found := scanLinks(old, id, nowMs, cut, &ids); found || live > max {
		return linkCount(live, found)
	}
	e := &linkID{id: id}
	e.seen.Store(nowMs)
	ids = append(ids, e)
	s.snap.Store(&ids)
	return len(ids)
}

// scanLinks stamps id's entry of ids at nowMs (when there) and counts the
// live entries (seen at cut or later), appending them to *keep unless keep
// is nil.
func scanLinks(ids []*linkID, id uint64, nowMs, cut int64, keep *[]*linkID) (live int, found bool) {
	for _, e := range ids {
		seen := e.seen.Load()
		if e.id == id {
			found = true
			if seen < nowMs {
				e.seen.Store(nowMs)
				seen = nowMs
			}
		}
		if seen >= cut {
			live++
			if keep != nil {
				*keep = append(*keep, e)
			}
		}
	}
	return live, found
}

// linkCount is the count of a set with live ids, id among them (found)
// or not (a set full of live ids: id would make one more).
func linkCount(live int, found bool) int {
	if found {
		return live
	}
	return live + 1
}

// len is how many ids the set remembers, forgotten ones included (tests).
func (s *linkSet) len() int {
	if snap := s.snap.Load(); snap != nil {
		return len(*snap)
	}
	return 0
}

// riskLinks counts the links of the built-in hook.
type riskLinks struct {
	seed              maphash.Seed
	window            time.Duration
	accountsPerDevice int // 0: not counted
	devicesPerIP      int // 0: not counted
	deviceFree        int // accounts on a device that weigh nothing
	ipFree            int // devices on an address that weigh nothing
	logins            bool
	devices           *touchMap[string, *linkSet]
	ips               *touchMap[string, *linkSet]
}

func newRiskLinks(cfg RiskConfig) *riskLinks {
	if cfg.AccountsPerDevice <= 0 && cfg.DevicesPerIP <= 0 {
		return nil
	}
	l := &riskLinks{seed: maphash.MakeSeed(), window: cfg.LinkWindow, accountsPerDevice: cfg.AccountsPerDevice, devicesPerIP: cfg.DevicesPerIP,
		deviceFree: min(cfg.DeviceAccountsFree, cfg.AccountsPerDevice), ipFree: min(cfg.IPDevicesFree, cfg.DevicesPerIP), logins: !cfg.LinkLoginsOff}
	if l.accountsPerDevice > 0 {
		l.devices = newTouchMap[string, *linkSet](cfg.KeysMax)
	}
	if l.devicesPerIP > 0 {
		l.ips = newTouchMap[string, *linkSet](cfg.KeysMax)
	}
	return l
}

// check counts in's links at now and returns the counts, which the
// webhook receives as signals (0: not counted).
func (l *riskLinks) check(in *RiskInput, now time.Time) (deviceAccounts, ipDevices int) {
	nowMs := now.UnixMilli()
	if l.devices != nil && in.DeviceID != "" && in.UserID != "" {
		set := l.devices.GetOrAdd(in.DeviceID, nowMs, func() *linkSet { return &linkSet{} })
		deviceAccounts = set.see(maphash.String(l.seed, in.UserID), now, l.window, l.accountsPerDevice)
	}
	if l.ips != nil && in.IP != "" {
		// An attempt without a device counts its account as the device:
		// rotating or dropping the device id gains nothing.
		var dev uint64
		if in.DeviceID != "" {
			dev = maphash.String(l.seed, in.DeviceID)
		} else {
			dev = maphash.String(l.seed, in.UserID) ^ linkNoDevice
		}
		set := l.ips.GetOrAdd(in.IP, nowMs, func() *linkSet { return &linkSet{} })
		ipDevices = set.see(dev, now, l.window, l.devicesPerIP)
	}
	return deviceAccounts, ipDevices
}

// score raises the linkage signals of the counts: each graded, and
// farm_shape when both are past their free numbers.
func (l *riskLinks) score(sig *riskSignals, w *RiskWeights) {
	var dev, ip int
	if l.devices != nil {
		if dev = linkGrade(sig.DeviceAccounts, l.deviceFree, l.accountsPerDevice, w.DeviceAccounts); sig.DeviceAccounts > l.deviceFree {
			sig.addWeight(RiskReasonDeviceAccounts, dev)
		}
	}
	if l.ips != nil {
		if ip = linkGrade(sig.IPDevices, l.ipFree, l.devicesPerIP, w.IPDevices); sig.IPDevices > l.ipFree {
			sig.addWeight(RiskReasonIPDevices, ip)
		}
	}
	if l.devices != nil && l.ips != nil && sig.DeviceAccounts > l.deviceFree && sig.IPDevices > l.ipFree {
		sig.add(RiskReasonFarmShape, w)
	}
}

// observeLogin counts the links of a login (a session issued to in.UserID
// on in.DeviceID from in.IP): the accounts a device logs in count before
// any of them reserves. A login without a device counts nothing (the
// account would count as a device of its own on the address, and again
// under its device when it reserves with one).
func (l *riskLinks) observeLogin(in *RiskInput, now time.Time) {
	if !l.logins || in.DeviceID == "" || in.UserID == "" {
		return
	}
	l.check(in, now)
}

// RiskLoginObserver is implemented by risk hooks that want to hear of
// logins (Engine.LoginSeen): the built-in hook counts their links.
type RiskLoginObserver interface {
	ObserveLogin(in RiskInput)
}

// ObserveLogin counts the links of a login when linkage is counted.
func (c *riskChain) ObserveLogin(in RiskInput) {
	if c.links != nil {
		c.links.observeLogin(&in, c.now())
	}
}

var _ RiskLoginObserver = (*riskChain)(nil)

// LoginSeen tells the risk hook, when it listens (RiskLoginObserver),
// that a session was issued to a.UserID on a.DeviceID from a.IP (a.Route
// "session"). It never refuses: the login itself is not judged.
func (e *Engine) LoginSeen(a Attempt) {
	if o, ok := e.risk.(RiskLoginObserver); ok {
		o.ObserveLogin(RiskInput{Attempt: a})
	}
}
