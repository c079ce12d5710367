// Package problem defines the error kinds that domain services return and
// the admin API turns into RFC 9457 problem details. It knows nothing of
// HTTP so that domain packages can use it without importing transport code.
package problem

import (
	"errors"
	"fmt"
)

// Kind classifies an error by what the caller can do about it.
type Kind int

const (
	KindInternal        Kind = iota // a bug or an outage; details never reach the client
	KindInvalid                     // the request is malformed or violates a rule
	KindNotFound                    // the named thing does not exist (or is not visible to the caller)
	KindConflict                    // the request clashes with current state (duplicate name, wrong status)
	KindUnauthenticated             // no or bad credentials
	KindForbidden                   // authenticated, but the role does not allow it
	KindTooLarge                    // the request body is over the limit
	KindRateLimited                 // too many requests
)

// FieldError names one invalid input field.
type FieldError struct {
	Field  string `json:"field" doc:"JSON path or parameter name of the offending input"`
	Detail string `json:"detail"`
}

// Error is a classified error whose Detail is safe to show to the caller.
type Error struct {
	Kind   Kind
	Detail string
	Fields []FieldError
	// Code is a stable machine-readable reason for clients that act on
	// it (the device agent); empty for most errors.
	Code string
	// Cause is kept for logs and errors.Is; it is never shown to clients.
	Cause error
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return e.Detail + ": " + e.Cause.Error()
	}
	return e.Detail
}

func (e *Error) Unwrap() error { return e.Cause }

func newf(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Detail: fmt.Sprintf(format, args...)}
}

// WithCode sets a machine-readable reason code.
func (e *Error) WithCode(code string) *Error {
	e.Code = code
	return e
}

// Invalid reports bad input; fields may name the offending inputs.
func Invalid(format string, args ...any) *Error { return newf(KindInvalid, format, args...) }

// InvalidField reports one bad input field.
func InvalidField(field, format string, args ...any) *Error {
	d := fmt.Sprintf(format, args...)
	return &Error{Kind: KindInvalid, Detail: field + ": " + d, Fields: []FieldError{{Field: field, Detail: d}}}
}

// NotFound reports a missing (or invisible) resource.
func NotFound(format string, args ...any) *Error { return newf(KindNotFound, format, args...) }

// Conflict reports a clash with current state.
func Conflict(format string, args ...any) *Error { return newf(KindConflict, format, args...) }

// Unauthenticated reports missing or bad credentials.
func Unauthenticated(format string, args ...any) *Error {
	return newf(KindUnauthenticated, format, args...)
}

// Forbidden reports an action the caller's role does not allow.
func Forbidden(format string, args ...any) *Error { return newf(KindForbidden, format, args...) }

// TooLarge reports an oversized request.
func TooLarge(format string, args ...any) *Error { return newf(KindTooLarge, format, args...) }

// RateLimited reports a caller over its request budget.
func RateLimited(format string, args ...any) *Error { return newf(KindRateLimited, format, args...) }

// KindOf returns the kind of the first *Error in err's chain, or KindInternal.
func KindOf(err error) Kind {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Kind
	}
	return KindInternal
}

// Is reports whether err carries kind k.
func Is(err error, k Kind) bool { return err != nil && KindOf(err) == k }
