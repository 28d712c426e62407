package wechatpay

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
)

// LoadPrivateKey reads an RSA private key of at least 2048 bits from PEM:
// PKCS#8 ("PRIVATE KEY", what WeChat Pay's certificate tool writes as
// apiclient_key.pem) or PKCS#1 ("RSA PRIVATE KEY"). Errors wrap ErrBadKey
// and never quote the key.
func LoadPrivateKey(pemBytes []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, fmt.Errorf("%w: private key: no PEM block", ErrBadKey)
	}
	var key *rsa.PrivateKey
	switch block.Type {
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: private key: cannot parse PKCS#8", ErrBadKey)
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("%w: private key: %T is not RSA", ErrBadKey, k)
		}
		key = rk
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: private key: cannot parse PKCS#1", ErrBadKey)
		}
		key = k
	default:
		return nil, fmt.Errorf("%w: private key: unexpected PEM block %q", ErrBadKey, block.Type)
	}
	if bits := key.N.BitLen(); bits < MinRSABits {
		return nil, fmt.Errorf("%w: private key: RSA-%d, want at least %d bits", ErrBadKey, bits, MinRSABits)
	}
	return key, nil
}

// LoadPublicKey reads an RSA public key of at least 2048 bits from PEM: a
// PKIX "PUBLIC KEY" (WeChat Pay's platform public key, whose id
// "PUB_KEY_ID_..." comes from the merchant platform, so serial is "") or
// a "CERTIFICATE" (a platform certificate; serial is its serial number in
// upper-case hex, as Wechatpay-Serial names it).
func LoadPublicKey(pemBytes []byte) (pub *rsa.PublicKey, serial string, err error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, "", fmt.Errorf("%w: public key: no PEM block", ErrBadKey)
	}
	var k any
	switch block.Type {
	case "PUBLIC KEY":
		k, err = x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, "", fmt.Errorf("%w: public key: cannot parse PKIX: %v", ErrBadKey, err)
		}
	case "RSA PUBLIC KEY":
		k, err = x509.ParsePKCS1PublicKey(block.Bytes)
		if err != nil {
			return nil, "", fmt.Errorf("%w: public key: cannot parse PKCS#1: %v", ErrBadKey, err)
		}
	case "CERTIFICATE":
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, "", fmt.Errorf("%w: certificate: %v", ErrBadKey, err)
		}
		k, serial = cert.PublicKey, fmt.Sprintf("%X", cert.SerialNumber)
	default:
		return nil, "", fmt.Errorf("%w: public key: unexpected PEM block %q", ErrBadKey, block.Type)
	}
	rk, ok := k.(*rsa.PublicKey)
	if !ok {
		return nil, "", fmt.Errorf("%w: public key: %T is not RSA", ErrBadKey, k)
	}
	if bits := rk.N.BitLen(); bits < MinRSABits {
		return nil, "", fmt.Errorf("%w: public key: RSA-%d, want at least %d bits", ErrBadKey, bits, MinRSABits)
	}
	return rk, serial, nil
}
