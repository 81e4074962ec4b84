package wire

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/pipecore/pipecore/sdk/internal/providerpb"
	"github.com/pipecore/pipecore/sdk/provider"
)

// ErrUnavailable means the plugin process could not be reached: it exited,
// is restarting, or its connection broke. Calls that fail with it never got
// an answer from a live plugin.
var ErrUnavailable = errors.New("plugin unavailable")

var kindToPB = map[provider.Kind]pb.ErrorDetail_Kind{
	provider.KindRetryable:    pb.ErrorDetail_KIND_RETRYABLE,
	provider.KindRateLimited:  pb.ErrorDetail_KIND_RATE_LIMITED,
	provider.KindPermanent:    pb.ErrorDetail_KIND_PERMANENT,
	provider.KindUnauthorized: pb.ErrorDetail_KIND_UNAUTHORIZED,
	provider.KindInvalid:      pb.ErrorDetail_KIND_INVALID,
	provider.KindUnsupported:  pb.ErrorDetail_KIND_UNSUPPORTED,
}

var kindToCode = map[provider.Kind]codes.Code{
	provider.KindRetryable:    codes.Unavailable,
	provider.KindRateLimited:  codes.ResourceExhausted,
	provider.KindPermanent:    codes.FailedPrecondition,
	provider.KindUnauthorized: codes.Unauthenticated,
	provider.KindInvalid:      codes.InvalidArgument,
	provider.KindUnsupported:  codes.Unimplemented,
}

// ToStatus turns a provider error into a gRPC status error carrying an
// ErrorDetail, so its kind, code and retry-after survive the wire. A nil
// error stays nil.
func ToStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		var pe *provider.Error
		if !errors.As(err, &pe) {
			return err // already a status (e.g. from a nested gRPC call)
		}
	}
	kind := provider.KindOf(err)
	code := kindToCode[kind]
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	}
	st := status.New(code, err.Error())
	detail := &pb.ErrorDetail{
		Kind:         kindToPB[kind],
		Code:         provider.CodeOf(err),
		RetryAfterMs: provider.RetryAfter(err).Milliseconds(),
	}
	if withDetail, derr := st.WithDetails(detail); derr == nil {
		st = withDetail
	}
	return st.Err()
}

// FromStatus turns an error returned by a gRPC call back into a provider
// error. A status with an ErrorDetail came from the plugin; one without it
// came from the transport: Unavailable then wraps ErrUnavailable,
// Unimplemented maps to provider.ErrUnsupported, and deadlines and
// cancellations wrap the context errors.
func FromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return provider.Retryable(err)
	}
	msg := errors.New(st.Message())
	for _, d := range st.Details() {
		detail, ok := d.(*pb.ErrorDetail)
		if !ok {
			continue
		}
		kind := provider.KindRetryable
		for k, v := range kindToPB {
			if v == detail.GetKind() {
				kind = k
			}
		}
		inner := msg
		switch st.Code() {
		case codes.DeadlineExceeded:
			inner = fmt.Errorf("%s: %w", st.Message(), context.DeadlineExceeded)
		case codes.Canceled:
			inner = fmt.Errorf("%s: %w", st.Message(), context.Canceled)
		}
		if kind == provider.KindUnsupported {
			inner = fmt.Errorf("%s: %w", st.Message(), provider.ErrUnsupported)
		}
		return &provider.Error{
			Kind:       kind,
			Code:       detail.GetCode(),
			RetryAfter: time.Duration(detail.GetRetryAfterMs()) * time.Millisecond,
			Err:        inner,
		}
	}
	switch st.Code() {
	case codes.DeadlineExceeded:
		return provider.Retryable(fmt.Errorf("plugin call: %w", context.DeadlineExceeded))
	case codes.Canceled:
		return provider.Retryable(fmt.Errorf("plugin call: %w", context.Canceled))
	case codes.Unimplemented:
		return &provider.Error{Kind: provider.KindUnsupported, Err: fmt.Errorf("%s: %w", st.Message(), provider.ErrUnsupported)}
	case codes.Unavailable:
		return provider.Retryable(fmt.Errorf("%w: %s", ErrUnavailable, st.Message()))
	case codes.ResourceExhausted:
		return provider.Invalid(fmt.Errorf("plugin call: %s", st.Message()))
	}
	return provider.Retryable(fmt.Errorf("plugin call: %s", st.Message()))
}
