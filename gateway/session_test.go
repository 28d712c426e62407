package gateway

import (
	"strings"
	"testing"
	"time"
)

func TestSessionSignVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	s := &sessions{secret: []byte("0123456789abcdef0123"), ttl: time.Hour, now: func() time.Time { return now }}
	for _, uid := range []string{"u1", "oXyZ_openid-123", "a.b.c", strings.Repeat("x", userIDLenMax)} {
		tok, exp := s.sign(uid)
		if !exp.Equal(now.Add(time.Hour)) {
			t.Errorf("sign(%q) expiry = %v; want %v", uid, exp, now.Add(time.Hour))
		}
		got, err := s.verify([]byte(tok))
		if err != nil || got != uid {
			t.Errorf("verify(sign(%q)) = %q, %v; want %q, nil", uid, got, err, uid)
		}
	}
	tok, _ := s.sign("u1")
	// Every single-byte change is refused.
	for i := 0; i < len(tok); i++ {
		b := []byte(tok)
		b[i] ^= 0x01
		if uid, err := s.verify(b); err == nil {
			t.Fatalf("verify(tampered at %d) = %q, nil; want error", i, uid)
		}
	}
	// Another secret does not verify.
	other := &sessions{secret: []byte("another-secret-of-20"), ttl: time.Hour, now: s.now}
	if _, err := other.verify([]byte(tok)); err != errTokenBadMAC {
		t.Errorf("verify with other secret: %v; want %v", err, errTokenBadMAC)
	}
	// A forged expiry does not verify.
	parts := strings.Split(tok, ".")
	parts[2] = "9999999999"
	if _, err := s.verify([]byte(strings.Join(parts, "."))); err != errTokenBadMAC {
		t.Errorf("verify(forged expiry) = %v; want %v", err, errTokenBadMAC)
	}
	// Expired.
	now = now.Add(time.Hour)
	if _, err := s.verify([]byte(tok)); err != errTokenExpired {
		t.Errorf("verify(expired) = %v; want %v", err, errTokenExpired)
	}
	for _, bad := range []string{"", "s1.", "s1..", "x1.dTE.1.abc", "s1.dTE.1", strings.Repeat("a", tokenLenMax+1), "s1.dTE.notanumber.AAAA"} {
		if _, err := s.verify([]byte(bad)); err == nil {
			t.Errorf("verify(%q) = nil; want error", bad)
		}
	}
}

func TestBearer(t *testing.T) {
	f := func(h, want string) {
		t.Helper()
		if got := string(bearer([]byte(h))); got != want {
			t.Errorf("bearer(%q) = %q; want %q", h, got, want)
		}
	}
	f("Bearer abc", "abc")
	f("bearer abc", "abc")
	f("BEARER  abc ", "abc")
	f("Basic abc", "")
	f("Bearer", "")
	f("", "")
	f("Bearerabc", "")
}

func TestValidUserID(t *testing.T) {
	for _, ok := range []string{"a", "oAbC_12-3", strings.Repeat("z", 128)} {
		if !validUserID(ok) {
			t.Errorf("validUserID(%q) = false", ok)
		}
	}
	for _, bad := range []string{"", "a b", "tab\t", "\x00", "é", strings.Repeat("z", 129)} {
		if validUserID(bad) {
			t.Errorf("validUserID(%q) = true", bad)
		}
	}
}
