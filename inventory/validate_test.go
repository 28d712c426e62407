package inventory

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// refValidID and refTagLen are ValidID and reservationTagLen one byte at a
// time, from the definitions: the eight-byte versions must agree.
func refValidID(s string) bool {
	if len(s) == 0 || len(s) > IDLenMax {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < '!' || c > '~' || c == '{' || c == '}' {
			return false
		}
	}
	return true
}

func refTagLen(s string) int {
	if !refValidID(s) {
		return 0
	}
	tag := strings.IndexByte(s, ':')
	if tag <= 0 || tag >= len(s)-1 {
		return 0
	}
	return tag
}

// TestValidIDWords checks ValidID and reservationTagLen against the byte
// definitions: every byte value at every position of ids of 1 to 26 bytes
// (words and tails), with a ':' before, after or nowhere, and random ids.
func TestValidIDWords(t *testing.T) {
	check := func(s string) {
		t.Helper()
		if got, want := ValidID(s), refValidID(s); got != want {
			t.Fatalf("ValidID(%q) = %v; want %v", s, got, want)
		}
		if got, want := reservationTagLen(s), refTagLen(s); got != want {
			t.Fatalf("reservationTagLen(%q) = %d; want %d", s, got, want)
		}
	}
	for n := 1; n <= 26; n++ {
		for _, colon := range []int{-1, 0, 1, 3, 7, 8, 9, 15, 16, 17, n - 2, n - 1} {
			b := []byte(strings.Repeat("a", n))
			if colon >= 0 && colon < n {
				b[colon] = ':'
			}
			for pos := range n {
				keep := b[pos]
				for c := range 256 {
					b[pos] = byte(c)
					check(string(b))
				}
				b[pos] = keep
			}
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("ab:{}~! \x7f\x80\xff\x00")
	for range 200_000 {
		b := make([]byte, 1+rng.IntN(IDLenMax+2))
		for i := range b {
			if rng.IntN(8) == 0 {
				b[i] = alphabet[rng.IntN(len(alphabet))]
			} else {
				b[i] = byte('!' + rng.IntN('~'-'!'+1))
			}
		}
		check(string(b))
	}
}

// FuzzValidID pins the eight-byte checks to the byte definitions.
func FuzzValidID(f *testing.F) {
	for _, s := range []string{"s1:r1", "abcdefgh:ijklmnop", "a{b:c", "abcdefg:", ":abcdefgh", "\x7fabcdefg:h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := ValidID(s), refValidID(s); got != want {
			t.Fatalf("ValidID(%q) = %v; want %v", s, got, want)
		}
		if got, want := reservationTagLen(s), refTagLen(s); got != want {
			t.Fatalf("reservationTagLen(%q) = %d; want %d", s, got, want)
		}
	})
}
