package gateway

import (
	"net"
	"testing"
	"time"

	"github.com/surge-retail/surge/engine"
	"github.com/surge-retail/surge/inventory"
)

func TestOptionsDefaults(t *testing.T) {
	store := inventory.NewMemory(inventory.Options{})
	defer store.Close()
	eng, err := engine.Open(t.Context(), engine.Options{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	o, err := Options{Engine: eng}.WithDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if o.BodyMaxBytes != 64<<10 || o.SessionTTL != 24*time.Hour || o.Login.Provider != ProviderDev ||
		o.ReadsInflightMax != ReadsInflightMaxDefault || o.WritesInflightMax != WritesInflightMaxDefault ||
		o.AdminInflightMax != AdminInflightMaxDefault || len(o.SessionSecret) != 32 || o.FeedWindow != 5*time.Minute ||
		o.RetryAfterSeconds != 1 || o.Logger == nil || o.Now == nil || len(o.TrustedProxies) != 2 {
		t.Errorf("defaults = %+v", o)
	}
	bad := []Options{
		{},
		{Engine: eng, SessionSecret: []byte("short")},
		{Engine: eng, AdminToken: "a"},
		{Engine: eng, FeedSecret: "0123456789abcde"},
		{Engine: eng, Login: LoginOptions{Provider: "facebook"}},
		{Engine: eng, Login: LoginOptions{Provider: ProviderWeChat}},
		{Engine: eng, TrustedProxies: []string{"not-an-ip"}},
	}
	for i, b := range bad {
		if _, err := New(b); err == nil {
			t.Errorf("New(bad options %d) = nil error", i)
		}
	}
	// Two servers on one registry: the second is refused, not a panic.
	s1, err := New(Options{Engine: eng})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{Engine: eng, Registry: s1.o.Registry}); err == nil {
		t.Error("second Server on the same registry: nil error")
	}
	// Shutdown before Serve: Serve then returns at once.
	if err := s1.Shutdown(t.Context()); err != nil {
		t.Errorf("Shutdown before Serve: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s1.Serve(ln); err != nil {
		t.Errorf("Serve after Shutdown = %v; want nil at once", err)
	}
}
