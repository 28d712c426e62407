package redistest

import "testing"

func TestStartPing(t *testing.T) {
	s := Start(t)
	if err := ping(s.Addr); err != nil {
		t.Fatalf("ping(%s) = %v; want nil", s.Addr, err)
	}
	s.Stop()
	if err := ping(s.Addr); err == nil {
		t.Fatalf("ping after Stop succeeded; want an error")
	}
}
