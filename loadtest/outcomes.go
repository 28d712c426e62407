package loadtest

import (
	"strconv"
	"strings"
)

// Outcome classes, for the report's bars and the error rate.
const (
	classSuccess = iota // 0, 304, 204
	classRefused        // a 4xx answer: the server said no (sold out, throttled, ...)
	classError          // a 5xx answer, a timeout or a connection error
	classOther          // canceled at the end of the run, a payment protocol fault, an unexpected status
	classN
)

// ClassCounts counts answers by class.
type ClassCounts struct {
	Success int64 `json:"success"`
	Refused int64 `json:"refused"` // 4xx
	Errors  int64 `json:"errors"`  // 5xx, timeouts, connection errors
	Other   int64 `json:"other"`   // canceled, bad_pay_params, unknown_prepay_id, 3xx
}

// Total is the number of answers counted.
func (c ClassCounts) Total() int64 { return c.Success + c.Refused + c.Errors + c.Other }

func (c ClassCounts) add(d ClassCounts) ClassCounts {
	return ClassCounts{c.Success + d.Success, c.Refused + d.Refused, c.Errors + d.Errors, c.Other + d.Other}
}

func (c *ClassCounts) inc(class int, n int64) {
	switch class {
	case classSuccess:
		c.Success += n
	case classRefused:
		c.Refused += n
	case classError:
		c.Errors += n
	default:
		c.Other += n
	}
}

func classesOf(outcomes map[string]int64) ClassCounts {
	var c ClassCounts
	for k, n := range outcomes {
		c.inc(outcomeClass(k), n)
	}
	return c
}

// outcomeClass sorts an outcome into a class. Errors are what the
// --max-error-rate threshold counts: 5xx (with or without an envelope),
// timeouts and connection errors.
func outcomeClass(outcome string) int {
	switch outcome {
	case "0", outcomeNotMod, outcomeNotified:
		return classSuccess
	case outcomeOrderClosed:
		return classRefused
	case outcomeTimeout, outcomeConnError:
		return classError
	case outcomeCanceled, outcomeDrop, outcomeBadPayParams, outcomeUnknownPrepay:
		return classOther
	}
	if status, ok := strings.CutPrefix(outcome, "http_"); ok {
		n, err := strconv.Atoi(status)
		switch {
		case err != nil:
			return classOther
		case n >= 500:
			return classError
		case n >= 400:
			return classRefused
		}
		return classOther
	}
	code, err := strconv.Atoi(outcome)
	switch {
	case err != nil:
		return classOther
	case code >= 50000 && code < 60000:
		return classError
	case code >= 40000 && code < 50000:
		return classRefused
	}
	return classOther
}

// apiCodeNames are API.md's error-code names.
var apiCodeNames = map[string]string{
	"0":     "ok",
	"40000": "bad_request",
	"40100": "unauthorized",
	"40300": "risk_denied",
	"40301": "forbidden",
	"40302": "not_registered",
	"40400": "not_found",
	"40900": "sold_out",
	"40901": "limit_exceeded",
	"40902": "not_active",
	"40903": "bad_state",
	"40904": "idempotency_conflict",
	"41300": "too_large",
	"42900": "throttled",
	"50000": "internal",
	"50300": "unavailable",
}

// OutcomeName names an outcome for a person: API.md's name of a code
// ("40900" is "sold_out"), or what a client-side outcome means.
func OutcomeName(outcome string) string {
	if n, ok := apiCodeNames[outcome]; ok {
		return n
	}
	switch outcome {
	case outcomeNotMod:
		return "not_modified"
	case outcomeNotified:
		return "notified"
	case outcomeTimeout, outcomeConnError, outcomeCanceled, outcomeDrop,
		outcomeBadPayParams, outcomeUnknownPrepay, outcomeOrderClosed:
		return outcome
	}
	if _, err := strconv.Atoi(outcome); err == nil {
		return "unknown_code"
	}
	return outcome
}

// outcomeLabel is "sold_out (40900)" for a code, the name alone when the
// outcome is a name already.
func outcomeLabel(outcome string) string {
	n := OutcomeName(outcome)
	if n == outcome {
		return n
	}
	return n + " (" + outcome + ")"
}
