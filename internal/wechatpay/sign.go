package wechatpay

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Headers WeChat Pay signs its answers and notifications with.
const (
	HeaderTimestamp = "Wechatpay-Timestamp"
	HeaderNonce     = "Wechatpay-Nonce"
	HeaderSignature = "Wechatpay-Signature"
	HeaderSerial    = "Wechatpay-Serial"
	HeaderRequestID = "Request-Id"
)

// AuthScheme is the scheme of the Authorization header of a merchant call.
const AuthScheme = "WECHATPAY2-SHA256-RSA2048"

// RequestMessage is what a merchant signs for a call:
// "METHOD\nCANONICAL_URL\nTIMESTAMP\nNONCE\nBODY\n", the canonical URL
// being the path and query as sent, e.g. "/v3/pay/transactions/jsapi".
func RequestMessage(method, canonicalURL, timestamp, nonce string, body []byte) []byte {
	b := make([]byte, 0, len(method)+len(canonicalURL)+len(timestamp)+len(nonce)+len(body)+5)
	b = append(append(b, method...), '\n')
	b = append(append(b, canonicalURL...), '\n')
	return appendResponseMessage(b, timestamp, nonce, body)
}

// ResponseMessage is what WeChat Pay signs for an answer or a
// notification: "TIMESTAMP\nNONCE\nBODY\n".
func ResponseMessage(timestamp, nonce string, body []byte) []byte {
	return appendResponseMessage(make([]byte, 0, len(timestamp)+len(nonce)+len(body)+3), timestamp, nonce, body)
}

func appendResponseMessage(b []byte, timestamp, nonce string, body []byte) []byte {
	b = append(append(b, timestamp...), '\n')
	b = append(append(b, nonce...), '\n')
	return append(append(b, body...), '\n')
}

// SignMessage returns base64(RSASSA-PKCS1-v1_5(SHA-256(msg))) with key.
func SignMessage(key *rsa.PrivateKey, msg []byte) (string, error) {
	sum := sha256.Sum256(msg)
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("wechatpay: cannot sign: %w", err)
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// VerifyMessage checks a base64 SHA256-RSA signature of msg with pub; its
// error wraps ErrBadSignature.
func VerifyMessage(pub *rsa.PublicKey, msg []byte, signature string) error {
	if signature == "" {
		return fmt.Errorf("%w: empty", ErrBadSignature)
	}
	sig, err := base64.StdEncoding.DecodeString(signature)
	if err != nil {
		return fmt.Errorf("%w: not base64", ErrBadSignature)
	}
	sum := sha256.Sum256(msg)
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
		return fmt.Errorf("%w: does not verify", ErrBadSignature)
	}
	return nil
}

// nonceAlphabet is what WeChat Pay's own nonces are made of.
const nonceAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// NewNonce returns 32 random characters of [A-Z0-9] from crypto/rand.
func NewNonce() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("BUG: crypto/rand failed: " + err.Error()) // never fails since Go 1.24
	}
	for i := range b {
		// 256 % 36 = 4: a bias of about 1.5% on the first four letters,
		// irrelevant for a nonce whose only job is to be unique.
		b[i] = nonceAlphabet[int(b[i])%len(nonceAlphabet)]
	}
	return string(b[:])
}

// Authorization is the parsed Authorization header of a merchant call.
type Authorization struct {
	MchID     string
	Nonce     string
	Signature string
	Timestamp string
	SerialNo  string
}

// String is the header value:
// WECHATPAY2-SHA256-RSA2048 mchid="..",nonce_str="..",signature="..",timestamp="..",serial_no="..".
func (a Authorization) String() string {
	return AuthScheme + ` mchid="` + a.MchID + `",nonce_str="` + a.Nonce + `",signature="` + a.Signature +
		`",timestamp="` + a.Timestamp + `",serial_no="` + a.SerialNo + `"`
}

// SignRequest makes the Authorization of a call signed with key.
func SignRequest(key *rsa.PrivateKey, mchID, serialNo, method, canonicalURL, timestamp, nonce string, body []byte) (Authorization, error) {
	sig, err := SignMessage(key, RequestMessage(method, canonicalURL, timestamp, nonce, body))
	if err != nil {
		return Authorization{}, err
	}
	return Authorization{MchID: mchID, Nonce: nonce, Signature: sig, Timestamp: timestamp, SerialNo: serialNo}, nil
}

// errBadAuthorization is wrapped by ParseAuthorization's errors.
var errBadAuthorization = errors.New("wechatpay: malformed Authorization header")

// ParseAuthorization parses an Authorization header of the
// WECHATPAY2-SHA256-RSA2048 scheme; every field must be present.
func ParseAuthorization(header string) (Authorization, error) {
	rest, ok := strings.CutPrefix(header, AuthScheme+" ")
	if !ok {
		return Authorization{}, fmt.Errorf("%w: scheme is not %s", errBadAuthorization, AuthScheme)
	}
	var a Authorization
	for field := range strings.SplitSeq(rest, ",") {
		name, value, ok := strings.Cut(strings.TrimSpace(field), "=")
		if !ok || len(value) < 2 || value[0] != '"' || value[len(value)-1] != '"' {
			return Authorization{}, fmt.Errorf("%w: field %q", errBadAuthorization, field)
		}
		value = value[1 : len(value)-1]
		switch name {
		case "mchid":
			a.MchID = value
		case "nonce_str":
			a.Nonce = value
		case "signature":
			a.Signature = value
		case "timestamp":
			a.Timestamp = value
		case "serial_no":
			a.SerialNo = value
		default:
			return Authorization{}, fmt.Errorf("%w: unknown field %q", errBadAuthorization, name)
		}
	}
	if a.MchID == "" || a.Nonce == "" || a.Signature == "" || a.Timestamp == "" || a.SerialNo == "" {
		return Authorization{}, fmt.Errorf("%w: a field is missing", errBadAuthorization)
	}
	return a, nil
}

// Verify checks a's signature of the call with the merchant public key;
// its error wraps ErrBadSignature.
func (a Authorization) Verify(pub *rsa.PublicKey, method, canonicalURL string, body []byte) error {
	return VerifyMessage(pub, RequestMessage(method, canonicalURL, a.Timestamp, a.Nonce, body), a.Signature)
}
