package gateway

import (
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/bytedance/sonic"
)

// strictJSON decodes request bodies: unknown fields, wrong types, trailing
// data and invalid UTF-8 are errors; strings are copied out of the request
// buffer (the engine may keep them).
var strictJSON = sonic.Config{
	DisallowUnknownFields: true,
	CopyString:            true,
	ValidateString:        true,
}.Froze()

// outJSON encodes answers.
var outJSON = sonic.Config{NoNullSliceOrMap: false}.Froze()

// decodeStrict decodes a JSON object body into v. An empty body is an
// error unless emptyOK (then v is left as is).
func decodeStrict(body []byte, v any, emptyOK bool) error {
	if isBlank(body) {
		if emptyOK {
			return nil
		}
		return errf(CodeBadRequest, "request body is empty; want a JSON object")
	}
	if firstNonSpace(body) != '{' {
		return errf(CodeBadRequest, "request body must be a JSON object")
	}
	if err := strictJSON.Unmarshal(body, v); err != nil {
		return errf(CodeBadRequest, "malformed JSON: "+trimSonicErr(err))
	}
	return nil
}

func isBlank(b []byte) bool {
	return firstNonSpace(b) == 0
}

func firstNonSpace(b []byte) byte {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
		default:
			return c
		}
	}
	return 0
}

// trimSonicErr makes sonic's multi-line error messages one short line.
func trimSonicErr(err error) string {
	var se interface{ Message() string }
	msg := err.Error()
	if errors.As(err, &se) {
		msg = se.Message()
	}
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	const msgLenMax = 200
	if len(msg) > msgLenMax {
		msg = msg[:msgLenMax]
	}
	return strings.TrimSpace(msg)
}

const (
	envelopeOKPrefix = `{"code":0,"msg":"ok","data":`
	envelopeSuffix   = `}`
)

// appendOK appends a success envelope around v's JSON.
func appendOK(dst []byte, v any) ([]byte, error) {
	data, err := outJSON.Marshal(v)
	if err != nil {
		return dst, err
	}
	dst = append(dst, envelopeOKPrefix...)
	dst = append(dst, data...)
	return append(dst, envelopeSuffix...), nil
}

// appendErr appends an error envelope.
func appendErr(dst []byte, code int, msg string) []byte {
	dst = append(dst, `{"code":`...)
	dst = strconv.AppendInt(dst, int64(code), 10)
	dst = append(dst, `,"msg":`...)
	dst = appendJSONString(dst, msg)
	return append(dst, '}')
}

// appendJSONString appends s as a JSON string; invalid UTF-8 becomes U+FFFD.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}

// codeOfBody reads the code of an envelope we wrote (for metrics of
// replayed idempotent answers); CodeInternal when it is not one.
func codeOfBody(b []byte) int {
	const p = `{"code":`
	if len(b) < len(p) || string(b[:len(p)]) != p {
		return CodeInternal
	}
	n := 0
	for _, c := range b[len(p):] {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
		if n > 99999 {
			return CodeInternal
		}
	}
	return n
}
