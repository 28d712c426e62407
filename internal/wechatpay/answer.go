package wechatpay

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
)

// NotifyAnswer is WeChat Pay's convention for answering a notification:
// nil → 204 with no body (WeChat stops sending it); an error → a status
// and {"code":"FAIL","message":...} (WeChat retries later). A *NotifyError
// answers 413 (too_large), 503 (nonces_full), 500 (decrypt_failed: our
// APIv3 key is wrong, not the sender) or 400/401 (the others), with its
// reason as the message; any other error (the caller's business failed)
// answers 500 "internal error", never the error's text.
func NotifyAnswer(err error) (status int, body []byte) {
	if err == nil {
		return http.StatusNoContent, nil
	}
	var ne *NotifyError
	if !errors.As(err, &ne) {
		return http.StatusInternalServerError, FailureBody("internal error")
	}
	switch ne.Reason {
	case ReasonTooLarge:
		status = http.StatusRequestEntityTooLarge
	case ReasonNoncesFull:
		status = http.StatusServiceUnavailable
	case ReasonDecryptFailed:
		status = http.StatusInternalServerError
	case ReasonUnknownSerial, ReasonBadSignature, ReasonStaleTimestamp, ReasonMissingHeader:
		status = http.StatusUnauthorized
	default:
		status = http.StatusBadRequest
	}
	return status, FailureBody(ne.Reason)
}

// FailureBody is {"code":"FAIL","message":message}.
func FailureBody(message string) []byte {
	b, _ := json.Marshal(struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}{"FAIL", message})
	return b
}

// WriteNotifyAnswer writes NotifyAnswer(err) to w.
func WriteNotifyAnswer(w http.ResponseWriter, err error) {
	status, body := NotifyAnswer(err)
	if body != nil {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	}
	w.WriteHeader(status)
	w.Write(body)
}
