package provider

import (
	"context"
	"errors"
	"time"
)

// Kind classifies a provider failure so the gateway knows what to do next.
type Kind uint8

// The error kinds. The zero Kind means "not a provider error"; KindOf never
// returns it for a non-nil error.
const (
	// KindRetryable: a network error, a 5xx or a timeout. The same request
	// may succeed later.
	KindRetryable Kind = iota + 1
	// KindRateLimited: the provider asked us to slow down (429). See
	// RetryAfter.
	KindRateLimited
	// KindPermanent: the provider refused the request for good, e.g. a
	// declined card. Retrying the same request cannot succeed.
	KindPermanent
	// KindUnauthorized: the tenant's credentials were rejected.
	KindUnauthorized
	// KindInvalid: the request was malformed or not acceptable to the
	// provider (unknown id, unsupported currency).
	KindInvalid
	// KindUnsupported: the plugin does not implement the operation.
	KindUnsupported
)

// String returns the kind's wire name, e.g. "rate_limited".
func (k Kind) String() string {
	switch k {
	case KindRetryable:
		return "retryable"
	case KindRateLimited:
		return "rate_limited"
	case KindPermanent:
		return "permanent"
	case KindUnauthorized:
		return "unauthorized"
	case KindInvalid:
		return "invalid"
	case KindUnsupported:
		return "unsupported"
	}
	return "unknown"
}

// ParseKind is the inverse of Kind.String; unknown names yield KindRetryable.
func ParseKind(s string) Kind {
	for k := KindRetryable; k <= KindUnsupported; k++ {
		if k.String() == s {
			return k
		}
	}
	return KindRetryable
}

// Error is a classified provider error. Construct it with the helpers
// (Retryable, Permanent, ...) rather than directly.
type Error struct {
	Kind Kind
	// Code is the provider's machine-readable code when it gave one
	// ("card_declined"); it is safe to show to the tenant.
	Code string
	// RetryAfter is how long the provider asked us to wait (KindRateLimited);
	// zero means unknown.
	RetryAfter time.Duration
	// Err is the underlying error. Its message must not contain secrets.
	Err error
}

// Error returns the underlying message.
func (e *Error) Error() string {
	if e.Err == nil {
		return "provider: " + e.Kind.String() + " error"
	}
	return e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

func wrap(k Kind, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Kind: k, Err: err}
}

// Retryable marks err as temporary. It returns nil for a nil err.
func Retryable(err error) error { return wrap(KindRetryable, err) }

// Permanent marks err as final: the same request can never succeed.
func Permanent(err error) error { return wrap(KindPermanent, err) }

// Unauthorized marks err as a rejection of the tenant's credentials.
func Unauthorized(err error) error { return wrap(KindUnauthorized, err) }

// Invalid marks err as a request the provider will not accept as sent.
func Invalid(err error) error { return wrap(KindInvalid, err) }

// RateLimited marks err as a throttling response; retryAfter may be zero.
func RateLimited(err error, retryAfter time.Duration) error {
	if err == nil {
		return nil
	}
	return &Error{Kind: KindRateLimited, RetryAfter: retryAfter, Err: err}
}

// WithCode attaches the provider's machine-readable code to a classified
// error (or classifies err as retryable first).
func WithCode(err error, code string) error {
	if err == nil {
		return nil
	}
	var pe *Error
	if errors.As(err, &pe) {
		cp := *pe
		cp.Code = code
		return &cp
	}
	return &Error{Kind: KindRetryable, Code: code, Err: err}
}

// KindOf returns the kind of err: the outermost classified kind in its
// chain, KindUnsupported for ErrUnsupported, KindRetryable for context
// cancellation, deadlines and unclassified errors, and 0 for nil.
func KindOf(err error) Kind {
	if err == nil {
		return 0
	}
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Kind
	}
	if errors.Is(err, ErrUnsupported) {
		return KindUnsupported
	}
	return KindRetryable
}

// CodeOf returns the provider code attached to err, if any.
func CodeOf(err error) string {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// RetryAfter returns the wait the provider asked for, or zero.
func RetryAfter(err error) time.Duration {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.RetryAfter
	}
	return 0
}

// IsTimeout reports whether err comes from a deadline: the caller's
// context expiring or the provider not answering in time.
func IsTimeout(err error) bool { return errors.Is(err, context.DeadlineExceeded) }
