package api

import (
	"errors"
	"io"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/pipecore/pipecore/core/internal/audit"
	"github.com/pipecore/pipecore/core/internal/courier"
	"github.com/pipecore/pipecore/core/internal/httpserver"
	"github.com/pipecore/pipecore/core/internal/messenger"
	"github.com/pipecore/pipecore/core/internal/payment"
	"github.com/pipecore/pipecore/core/internal/pluginhost"
	"github.com/pipecore/pipecore/core/internal/store"
	"github.com/pipecore/pipecore/core/internal/subscription"
	"github.com/pipecore/pipecore/core/internal/tenant"
	"github.com/pipecore/pipecore/core/internal/validation"
	"github.com/pipecore/pipecore/sdk/provider"
)

var errEOF = io.EOF

// failure is the HTTP rendering of an error.
type failure struct {
	status     int
	detail     httpserver.ErrorDetail
	retryAfter int // seconds; 0 means no header
}

// classify maps a flow's error to its HTTP answer. Provider messages are
// passed on with the tenant's secrets scrubbed; internal errors are not.
func classify(err error, secrets []string) failure {
	msg := audit.Scrub(err.Error(), secrets)
	var verr *validation.Error
	switch {
	case errors.As(err, &verr):
		return failure{status: fasthttp.StatusBadRequest, detail: httpserver.ErrorDetail{Code: "invalid_request", Message: verr.Error()}}
	case errors.Is(err, subscription.ErrNotFound):
		return failure{status: fasthttp.StatusNotFound, detail: httpserver.ErrorDetail{Code: "not_found", Message: "no such subscription"}}
	case errors.Is(err, subscription.ErrNoProvider):
		return failure{status: fasthttp.StatusBadRequest, detail: httpserver.ErrorDetail{Code: "provider_not_enabled", Message: msg}}
	case errors.Is(err, messenger.ErrNotFound):
		return failure{status: fasthttp.StatusNotFound, detail: httpserver.ErrorDetail{Code: "not_found", Message: msg}}
	case errors.Is(err, messenger.ErrNoProvider):
		return failure{status: fasthttp.StatusBadRequest, detail: httpserver.ErrorDetail{Code: "provider_not_enabled", Message: msg}}
	case errors.Is(err, messenger.ErrSessionClosed):
		return failure{status: fasthttp.StatusUnprocessableEntity, detail: httpserver.ErrorDetail{Code: "whatsapp_session_closed", Message: msg}}
	case errors.Is(err, messenger.ErrReadOnly):
		return failure{status: fasthttp.StatusConflict, detail: httpserver.ErrorDetail{Code: "defined_in_config", Message: msg}}
	case errors.Is(err, courier.ErrNotFound):
		return failure{status: fasthttp.StatusNotFound, detail: httpserver.ErrorDetail{Code: "not_found", Message: "no such delivery or quote"}}
	case errors.Is(err, courier.ErrQuoteExpired):
		return failure{status: fasthttp.StatusConflict, detail: httpserver.ErrorDetail{Code: "quote_expired", Message: msg}}
	case errors.Is(err, courier.ErrConflict):
		return failure{status: fasthttp.StatusConflict, detail: httpserver.ErrorDetail{Code: "delivery_state_conflict", Message: msg}}
	case errors.Is(err, courier.ErrNoProvider):
		return failure{status: fasthttp.StatusBadRequest, detail: httpserver.ErrorDetail{Code: "provider_not_enabled", Message: msg}}
	case errors.Is(err, payment.ErrNotFound):
		return failure{status: fasthttp.StatusNotFound, detail: httpserver.ErrorDetail{Code: "not_found", Message: "no such payment"}}
	case errors.Is(err, payment.ErrNoProvider):
		return failure{status: fasthttp.StatusBadRequest, detail: httpserver.ErrorDetail{Code: "provider_not_enabled", Message: msg}}
	case errors.Is(err, pluginhost.ErrUnknown), errors.Is(err, pluginhost.ErrCapability):
		return failure{status: fasthttp.StatusBadRequest, detail: httpserver.ErrorDetail{Code: "provider_not_available", Message: msg}}
	case errors.Is(err, pluginhost.ErrUnavailable):
		return failure{status: fasthttp.StatusServiceUnavailable, retryAfter: 1,
			detail: httpserver.ErrorDetail{Code: "plugin_unavailable", Message: msg, Retryable: true}}
	case provider.IsTimeout(err):
		return failure{status: fasthttp.StatusGatewayTimeout,
			detail: httpserver.ErrorDetail{Code: "provider_timeout", Message: "the provider did not answer in time", Retryable: true}}
	case errors.Is(err, store.ErrClosed), errors.Is(err, store.ErrLocked):
		return failure{status: fasthttp.StatusServiceUnavailable, retryAfter: 1,
			detail: httpserver.ErrorDetail{Code: "storage_unavailable", Message: "storage is unavailable", Retryable: true}}
	}
	var pe *provider.Error
	if !errors.As(err, &pe) {
		return failure{status: fasthttp.StatusInternalServerError, detail: httpserver.ErrorDetail{Code: "internal_error", Message: "internal error"}}
	}
	d := httpserver.ErrorDetail{Message: msg, ProviderCode: pe.Code}
	switch pe.Kind {
	case provider.KindRateLimited:
		d.Code, d.Retryable = "provider_rate_limited", true
		secs := int(pe.RetryAfter.Seconds() + 0.999)
		return failure{status: fasthttp.StatusTooManyRequests, detail: d, retryAfter: max(secs, 1)}
	case provider.KindPermanent:
		d.Code = "provider_rejected"
		return failure{status: fasthttp.StatusUnprocessableEntity, detail: d}
	case provider.KindUnauthorized:
		d.Code = "provider_unauthorized"
		d.Message = "the provider rejected this tenant's credentials: " + msg
		return failure{status: fasthttp.StatusBadGateway, detail: d}
	case provider.KindInvalid:
		d.Code = "provider_invalid_request"
		return failure{status: fasthttp.StatusBadRequest, detail: d}
	case provider.KindUnsupported:
		d.Code = "unsupported"
		return failure{status: fasthttp.StatusBadRequest, detail: d}
	}
	d.Code, d.Retryable = "provider_error", true
	return failure{status: fasthttp.StatusBadGateway, detail: d}
}

func (f failure) body() httpserver.ErrorBody { return httpserver.ErrorBody{Error: f.detail} }

// writeFailure answers err and logs what the tenant does not see.
func (a *API) writeFailure(ctx *fasthttp.RequestCtx, t *tenant.Tenant, prov string, err error) {
	f := classify(err, secretsOf(t, prov))
	if f.status >= 500 {
		a.cfg.Logger.Warn("request failed", "request_id", httpserver.RequestID(ctx), "tenant", t.ID, "provider", prov,
			"status", f.status, "code", f.detail.Code, "error", audit.Scrub(err.Error(), secretsOf(t, prov)))
	}
	if f.retryAfter > 0 {
		ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, strconv.Itoa(f.retryAfter))
	}
	httpserver.WriteJSON(ctx, f.status, f.body())
}

func secretsOf(t *tenant.Tenant, prov string) []string {
	if t == nil {
		return nil
	}
	if prov != "" {
		return t.SecretValues(prov)
	}
	var all []string
	for _, p := range t.Providers() {
		all = append(all, t.SecretValues(p)...)
	}
	return all
}

func isInvalidQuery(err error) bool { return errors.Is(err, store.ErrInvalidQuery) }
