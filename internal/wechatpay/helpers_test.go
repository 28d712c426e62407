package wechatpay_test

import (
	"crypto/rand"
	"crypto/rsa"
	"sync"
	"testing"
)

var otherKeyOnce = sync.OnceValues(func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) })

// otherKey is an RSA-2048 key nobody configured.
func otherKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := otherKeyOnce()
	if err != nil {
		t.Fatal(err)
	}
	return k
}
