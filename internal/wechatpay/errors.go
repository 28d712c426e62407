package wechatpay

import (
	"errors"
	"fmt"
)

var (
	// ErrInvalidConfig is wrapped by Config.Validate's error, which names
	// every missing or malformed setting.
	ErrInvalidConfig = errors.New("wechatpay: invalid config")

	// ErrBadKey is wrapped when a PEM key or certificate cannot be used:
	// not PEM, an unknown block type, not RSA, or fewer than 2048 bits.
	ErrBadKey = errors.New("wechatpay: bad key")

	// ErrUnavailable is wrapped when WeChat Pay could not be reached, did
	// not answer within the timeout, or answered 5xx or 429. A caller may
	// retry, or answer 503.
	ErrUnavailable = errors.New("wechatpay: unavailable")

	// ErrBadResponse is wrapped when a 2xx answer cannot be read: too large,
	// or not the JSON expected.
	ErrBadResponse = errors.New("wechatpay: bad response")

	// ErrBadSignature is wrapped when a signature (of an answer or a
	// notification) is missing, not base64, or does not verify.
	ErrBadSignature = errors.New("wechatpay: bad signature")

	// ErrUnknownSerial is wrapped when a Wechatpay-Serial names no
	// configured platform key.
	ErrUnknownSerial = errors.New("wechatpay: unknown platform key serial")

	// ErrStaleTimestamp is wrapped when a Wechatpay-Timestamp is further
	// from now than the window (Config.NotifyWindow, 5 minutes by default).
	ErrStaleTimestamp = errors.New("wechatpay: timestamp outside the window")

	// ErrReplayedNonce is wrapped when a notification's nonce was already
	// seen within the window.
	ErrReplayedNonce = errors.New("wechatpay: nonce seen before")

	// ErrNoncesFull is wrapped when the nonce memory holds Config.NoncesMax
	// live nonces: the notification is refused (WeChat Pay retries later)
	// rather than a live nonce forgotten.
	ErrNoncesFull = errors.New("wechatpay: nonce memory full")

	// ErrTooLarge is wrapped when a notification body exceeds MaxBodyBytes.
	ErrTooLarge = errors.New("wechatpay: body too large")

	// ErrMissingHeader is wrapped when a Wechatpay-* header is absent.
	ErrMissingHeader = errors.New("wechatpay: missing header")

	// ErrMalformed is wrapped when a notification, its timestamp or its
	// decrypted resource is not what the protocol says.
	ErrMalformed = errors.New("wechatpay: malformed notification")

	// ErrDecrypt is wrapped when a resource cannot be decrypted: an
	// unsupported algorithm, bad base64, a nonce that is not 12 bytes, or
	// an authentication failure (wrong APIv3 key or tampered ciphertext).
	ErrDecrypt = errors.New("wechatpay: cannot decrypt resource")
)

// APIError is a non-2xx answer of WeChat Pay with its {"code","message"}
// body. A 5xx or 429 APIError also matches ErrUnavailable with errors.Is.
type APIError struct {
	Status    int    // HTTP status
	Code      string // WeChat's code, e.g. "INVALID_REQUEST", "SIGN_ERROR"
	Message   string // WeChat's message
	RequestID string // the Request-ID header, for WeChat support
}

func (e *APIError) Error() string {
	return fmt.Sprintf("wechatpay: api error %d %s: %s", e.Status, e.Code, e.Message)
}

// Unwrap makes a 5xx or 429 answer match ErrUnavailable.
func (e *APIError) Unwrap() error {
	if e.Status >= 500 || e.Status == 429 {
		return ErrUnavailable
	}
	return nil
}

// Reasons of a refused notification: short, stable, usable as metrics
// labels.
const (
	ReasonTooLarge       = "too_large"
	ReasonMissingHeader  = "missing_header"
	ReasonMalformed      = "malformed"
	ReasonUnknownSerial  = "unknown_serial"
	ReasonBadSignature   = "bad_signature"
	ReasonStaleTimestamp = "stale_timestamp"
	ReasonReplayedNonce  = "replayed_nonce"
	ReasonNoncesFull     = "nonces_full"
	ReasonDecryptFailed  = "decrypt_failed"
	// ReasonOther is what Reason returns for an error that is not a
	// *NotifyError.
	ReasonOther = "other"
)

// NotifyError is a refused notification: Reason is one of the Reason*
// constants, Err wraps the sentinel (ErrBadSignature, ErrReplayedNonce...).
type NotifyError struct {
	Reason string
	Err    error
}

func (e *NotifyError) Error() string {
	return "wechatpay: notification refused (" + e.Reason + "): " + e.Err.Error()
}

func (e *NotifyError) Unwrap() error { return e.Err }

// Reason returns the reason of a *NotifyError in err's chain, "" for nil,
// and ReasonOther for any other error.
func Reason(err error) string {
	if err == nil {
		return ""
	}
	var ne *NotifyError
	if errors.As(err, &ne) {
		return ne.Reason
	}
	return ReasonOther
}

func refuse(reason string, err error) *NotifyError {
	return &NotifyError{Reason: reason, Err: err}
}
