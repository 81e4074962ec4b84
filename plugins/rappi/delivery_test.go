package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pipecore/pipecore/plugins/rappi/internal/wire"
	"github.com/pipecore/pipecore/plugins/rappi/rappifake"
	"github.com/pipecore/pipecore/sdk/delivery"
	"github.com/pipecore/pipecore/sdk/provider"
	"github.com/pipecore/pipecore/sdk/providertest"
)

func startFake(t testing.TB) *rappifake.Server {
	t.Helper()
	f := rappifake.Start()
	t.Cleanup(f.Close)
	return f
}

func ctxT(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func quoteReq(tn provider.Tenant) delivery.QuoteRequest {
	return delivery.QuoteRequest{Tenant: tn, Pickup: providertest.DefaultPickup, Dropoff: providertest.DefaultDropoff, Reference: "order-1"}
}

func createReq(tn provider.Tenant, key string) delivery.CreateRequest {
	return delivery.CreateRequest{
		Tenant: tn, IdempotencyKey: key, DeliveryID: "del_" + key,
		Pickup: providertest.DefaultPickup, Dropoff: providertest.DefaultDropoff, Reference: "order-" + key,
		Items: []delivery.Item{{Name: "Pizza", Quantity: 2, Size: "medium", Price: &provider.Money{Amount: 12990, Currency: "CLP"}}},
	}
}

// calls returns the recorded requests to path (a prefix) with method.
func calls(f *rappifake.Server, method, path string) []rappifake.Request {
	var out []rappifake.Request
	for _, r := range f.Requests() {
		if r.Method == method && strings.HasPrefix(r.Path, path) {
			out = append(out, r)
		}
	}
	return out
}

func logins(f *rappifake.Server) int { return len(calls(f, "POST", wire.TokenPath)) }

func TestInfo(t *testing.T) {
	info := newProvider().Info()
	if err := info.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, secret := range map[string]bool{fieldClientID: true, fieldClientSecret: true, fieldWebhookSecret: true, provider.BaseURLField: false, fieldCountry: false} {
		f, ok := info.Field(name)
		if !ok || f.Secret != secret {
			t.Errorf("field %s: %+v (declared %v), want secret=%v", name, f, ok, secret)
		}
	}
	w := info.Webhook
	if w == nil || w.Scheme != provider.SchemeRappi || w.Header != "Rappi-Signature" || w.SecretField != fieldWebhookSecret || len(w.DedupKey) != 3 {
		t.Fatalf("webhook spec %+v", w)
	}
}

func TestQuote(t *testing.T) {
	f := startFake(t)
	f.SetFee(3490, "CLP")
	f.SetETA(35 * time.Minute)
	p := newProvider()
	before := time.Now()
	q, err := p.Quote(ctxT(t), quoteReq(testTenant(f.URL())))
	if err != nil {
		t.Fatal(err)
	}
	if q.ID == "" || q.Fee != (provider.Money{Amount: 3490, Currency: "CLP"}) || q.ETA != 35*time.Minute || !q.ExpiresAt.After(before) {
		t.Fatalf("quote %+v", q)
	}
	reqs := calls(f, "POST", wire.QuotesPath)
	if len(reqs) != 1 {
		t.Fatalf("%d quote calls", len(reqs))
	}
	r := reqs[0]
	if !strings.HasPrefix(r.Header.Get("X-Authorization"), "Bearer rappi_tok_") || r.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("headers %v", r.Header)
	}
	var body wire.QuoteRequest
	if err := json.Unmarshal(r.Body, &body); err != nil {
		t.Fatal(err)
	}
	if body.Country != "CL" || body.Reference != "order-1" || body.Pickup.Address.Street != "Avenida Providencia" ||
		body.Dropoff.Location == nil || body.Dropoff.Contact.Phone != "+56987654321" || body.Pickup.Instructions != "Retirar en mostrador" {
		t.Fatalf("quote body %s", r.Body)
	}
	if len(body.Items) != 1 || body.Items[0] != defaultItem {
		t.Fatalf("items %+v, want the default item when none is given", body.Items)
	}
}

func TestCreateShipmentIdempotent(t *testing.T) {
	f := startFake(t)
	p := newProvider()
	tn := testTenant(f.URL())
	q, err := p.Quote(ctxT(t), quoteReq(tn))
	if err != nil {
		t.Fatal(err)
	}
	req := createReq(tn, "k1")
	req.QuoteID = q.ID
	req.ReadyAt = time.Date(2026, 11, 27, 15, 0, 0, 0, time.FixedZone("CLT", -3*3600))
	a, err := p.CreateShipment(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	if a.ID == "" || a.Status != delivery.StatusPending || a.Fee.Amount != 1990 || a.TrackingURL == "" || a.ETA.IsZero() {
		t.Fatalf("shipment %+v", a)
	}
	// The same key again, from a fresh plugin process (no local memory):
	// Rappi answers with the same delivery.
	b, err := newProvider().CreateShipment(ctxT(t), req)
	if err != nil || b.ID != a.ID {
		t.Fatalf("repeat = %+v, %v; want %s", b, err, a.ID)
	}
	if n := f.Deliveries(); n != 1 {
		t.Fatalf("%d deliveries booked, want 1", n)
	}
	creates := calls(f, "POST", wire.DeliveriesPath)
	var body wire.OrderRequest
	if err := json.Unmarshal(creates[0].Body, &body); err != nil {
		t.Fatal(err)
	}
	if creates[0].Header.Get("Idempotency-Key") != "k1" || body.ExternalID != "del_k1" || body.QuoteID != q.ID || body.ReadyAt != "2026-11-27T18:00:00Z" {
		t.Fatalf("create request %v %s", creates[0].Header, creates[0].Body)
	}
	if it := body.Items[0]; it.Name != "Pizza" || it.Quantity != 2 || it.Size != "medium" || it.Price == nil || it.Price.Amount != 12990 {
		t.Fatalf("item %+v", it)
	}

	// Without a delivery id the idempotency key is the external_id.
	req2 := createReq(tn, "k2")
	req2.DeliveryID = ""
	if _, err := p.CreateShipment(ctxT(t), req2); err != nil {
		t.Fatal(err)
	}
	creates = calls(f, "POST", wire.DeliveriesPath)
	if !bytes.Contains(creates[len(creates)-1].Body, []byte(`"external_id":"k2"`)) {
		t.Fatalf("create body %s", creates[len(creates)-1].Body)
	}
}

func TestCreateShipmentInvalid(t *testing.T) {
	f := startFake(t)
	p := newProvider()
	tn := testTenant(f.URL())
	tests := map[string]func(r *delivery.CreateRequest){
		"no ids":            func(r *delivery.CreateRequest) { r.DeliveryID, r.IdempotencyKey = "", "" },
		"empty pickup":      func(r *delivery.CreateRequest) { r.Pickup = delivery.Stop{} },
		"empty dropoff":     func(r *delivery.CreateRequest) { r.Dropoff = delivery.Stop{Contact: r.Dropoff.Contact} },
		"negative quantity": func(r *delivery.CreateRequest) { r.Items[0].Quantity = -1 },
		"bad price":         func(r *delivery.CreateRequest) { r.Items[0].Price = &provider.Money{Amount: 5, Currency: "clp"} },
		"bad location":      func(r *delivery.CreateRequest) { r.Pickup.Location = &delivery.Location{Lat: 123} },
	}
	for name, mut := range tests {
		t.Run(name, func(t *testing.T) {
			req := createReq(tn, "inv")
			req.Items = append([]delivery.Item(nil), req.Items...)
			mut(&req)
			_, err := p.CreateShipment(ctxT(t), req)
			if provider.KindOf(err) != provider.KindInvalid {
				t.Fatalf("err = %v (kind %s), want invalid", err, provider.KindOf(err))
			}
		})
	}
	if n := len(f.Requests()); n != 0 {
		t.Fatalf("%d requests sent for invalid input, want none", n)
	}
	// A quote the provider does not know: Rappi's 400 is invalid too.
	req := createReq(tn, "q")
	req.QuoteID = "rq_unknown"
	_, err := p.CreateShipment(ctxT(t), req)
	if provider.KindOf(err) != provider.KindInvalid || provider.CodeOf(err) != wire.CodeQuoteExpired {
		t.Fatalf("unknown quote: err = %v (kind %s, code %q)", err, provider.KindOf(err), provider.CodeOf(err))
	}
}

func TestGetShipmentFollowsLifecycle(t *testing.T) {
	f := startFake(t)
	p := newProvider()
	tn := testTenant(f.URL())
	sh, err := p.CreateShipment(ctxT(t), createReq(tn, "life"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []delivery.Status{delivery.StatusAssigned, delivery.StatusPickedUp, delivery.StatusDelivered} {
		if _, err := f.Advance(sh.ID); err != nil {
			t.Fatal(err)
		}
		got, err := p.GetShipment(ctxT(t), delivery.GetRequest{Tenant: tn, ID: sh.ID})
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != want || got.ID != sh.ID {
			t.Fatalf("status %q, want %q", got.Status, want)
		}
		if c := got.Courier; c == nil || c.Name != "Camila Rojas" || c.Phone == "" || c.Vehicle != "motorcycle" || c.Location == nil {
			t.Fatalf("courier %+v", got.Courier)
		}
		if (want == delivery.StatusDelivered) != (got.Proof != nil) {
			t.Fatalf("%s: proof %+v", want, got.Proof)
		}
	}
	if _, err := p.GetShipment(ctxT(t), delivery.GetRequest{Tenant: tn, ID: "000"}); provider.KindOf(err) != provider.KindInvalid || provider.CodeOf(err) != wire.CodeNotFound {
		t.Fatalf("unknown id: %v (kind %s)", err, provider.KindOf(err))
	}
	if _, err := p.GetShipment(ctxT(t), delivery.GetRequest{Tenant: tn}); provider.KindOf(err) != provider.KindInvalid {
		t.Fatalf("empty id: %v", err)
	}
}

func TestCancelShipment(t *testing.T) {
	f := startFake(t)
	p := newProvider()
	tn := testTenant(f.URL())
	tests := map[string]struct {
		advance int
		kind    provider.Kind
	}{
		"pending":   {0, 0},
		"assigned":  {1, 0},
		"picked up": {2, provider.KindPermanent},
		"delivered": {3, provider.KindPermanent},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			sh, err := p.CreateShipment(ctxT(t), createReq(tn, "cancel-"+strings.ReplaceAll(name, " ", "-")))
			if err != nil {
				t.Fatal(err)
			}
			for range tc.advance {
				if _, err := f.Advance(sh.ID); err != nil {
					t.Fatal(err)
				}
			}
			got, err := p.CancelShipment(ctxT(t), delivery.CancelRequest{Tenant: tn, IdempotencyKey: "c-" + sh.ID, ID: sh.ID, Reason: "customer changed the address"})
			if tc.kind != 0 {
				if provider.KindOf(err) != tc.kind || provider.CodeOf(err) != wire.CodeCancelNotAllowed || !strings.Contains(err.Error(), "can no longer be canceled") {
					t.Fatalf("err = %v (kind %s, code %q), want permanent with Rappi's message", err, provider.KindOf(err), provider.CodeOf(err))
				}
				return
			}
			if err != nil || got.Status != delivery.StatusCancelled || got.Reason != "customer changed the address" {
				t.Fatalf("cancel = %+v, %v", got, err)
			}
			again, err := p.CancelShipment(ctxT(t), delivery.CancelRequest{Tenant: tn, ID: sh.ID})
			if err != nil || again.Status != delivery.StatusCancelled {
				t.Fatalf("second cancel = %+v, %v", again, err)
			}
		})
	}
	reqs := calls(f, "POST", wire.DeliveriesPath+"/")
	if len(reqs) == 0 || !strings.HasSuffix(reqs[0].Path, wire.CancelSuffix) || reqs[0].Header.Get("Idempotency-Key") == "" {
		t.Fatalf("cancel requests %+v", reqs)
	}
}

func TestTokenCachedPerTenantAndCredentials(t *testing.T) {
	f := startFake(t)
	p := newProvider()
	tn := testTenant(f.URL())
	for range 3 {
		if _, err := p.Quote(ctxT(t), quoteReq(tn)); err != nil {
			t.Fatal(err)
		}
	}
	if n := logins(f); n != 1 {
		t.Fatalf("%d logins for one tenant, want 1", n)
	}
	other := providertest.Tenant("globex", tn.Settings(), tn.RevealSecrets())
	if _, err := p.Quote(ctxT(t), quoteReq(other)); err != nil {
		t.Fatal(err)
	}
	if n := logins(f); n != 2 {
		t.Fatalf("%d logins after a second tenant, want 2", n)
	}
	// Same tenant and client_id, another secret: the cached token must not
	// be reused, so the wrong secret is found out.
	secrets := tn.RevealSecrets()
	secrets[fieldClientSecret] = "not-the-secret"
	bad := providertest.Tenant("acme", tn.Settings(), secrets)
	if _, err := p.Quote(ctxT(t), quoteReq(bad)); provider.KindOf(err) != provider.KindUnauthorized {
		t.Fatalf("wrong secret with a cached token: %v (kind %s)", err, provider.KindOf(err))
	}
}

func TestTokenSingleFlight(t *testing.T) {
	f := startFake(t)
	p := newProvider()
	tn := testTenant(f.URL())
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			_, err := p.Quote(ctxT(t), quoteReq(tn))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := logins(f); n != 1 {
		t.Fatalf("%d logins for 20 concurrent calls, want 1", n)
	}
}

func TestTokenRefresh(t *testing.T) {
	t.Run("once on 401", func(t *testing.T) {
		f := startFake(t)
		p := newProvider()
		tn := testTenant(f.URL())
		if _, err := p.Quote(ctxT(t), quoteReq(tn)); err != nil {
			t.Fatal(err)
		}
		f.FailNext(http.StatusUnauthorized, 1)
		if _, err := p.Quote(ctxT(t), quoteReq(tn)); err != nil {
			t.Fatalf("quote after a revoked token: %v", err)
		}
		if n := logins(f); n != 2 {
			t.Fatalf("%d logins, want 2", n)
		}
	})
	t.Run("not twice", func(t *testing.T) {
		f := startFake(t)
		p := newProvider()
		f.FailNext(http.StatusUnauthorized, 5)
		_, err := p.Quote(ctxT(t), quoteReq(testTenant(f.URL())))
		if provider.KindOf(err) != provider.KindUnauthorized {
			t.Fatalf("err = %v (kind %s), want unauthorized", err, provider.KindOf(err))
		}
		if n, q := logins(f), len(calls(f, "POST", wire.QuotesPath)); n != 2 || q != 2 {
			t.Fatalf("%d logins and %d quote calls, want 2 and 2", n, q)
		}
	})
	t.Run("before expiry", func(t *testing.T) {
		f := startFake(t)
		p := newProvider()
		now := time.Now()
		var mu sync.Mutex
		p.tokens.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		tn := testTenant(f.URL())
		if _, err := p.Quote(ctxT(t), quoteReq(tn)); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		now = now.Add(wire.TokenLifetime - refreshMargin - time.Second)
		mu.Unlock()
		if _, err := p.Quote(ctxT(t), quoteReq(tn)); err != nil {
			t.Fatal(err)
		}
		if n := logins(f); n != 1 {
			t.Fatalf("%d logins before the refresh point, want 1", n)
		}
		mu.Lock()
		now = now.Add(2 * time.Second)
		mu.Unlock()
		if _, err := p.Quote(ctxT(t), quoteReq(tn)); err != nil {
			t.Fatal(err)
		}
		if n := logins(f); n != 2 {
			t.Fatalf("%d logins past the refresh point, want 2", n)
		}
	})
}

func TestErrorKinds(t *testing.T) {
	tests := map[string]struct {
		status int
		kind   provider.Kind
	}{
		"500": {500, provider.KindRetryable},
		"503": {503, provider.KindRetryable},
		"429": {429, provider.KindRateLimited},
		"400": {400, provider.KindInvalid},
		"404": {404, provider.KindInvalid},
		"403": {403, provider.KindUnauthorized},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := startFake(t)
			f.FailNext(tc.status, 1)
			_, err := newProvider().Quote(ctxT(t), quoteReq(testTenant(f.URL())))
			if provider.KindOf(err) != tc.kind || provider.CodeOf(err) != "injected_failure" {
				t.Fatalf("err = %v (kind %s, code %q), want %s", err, provider.KindOf(err), provider.CodeOf(err), tc.kind)
			}
			if tc.status == 429 && provider.RetryAfter(err) != time.Second {
				t.Fatalf("RetryAfter = %s, want 1s", provider.RetryAfter(err))
			}
		})
	}
}

func TestTenantConfiguration(t *testing.T) {
	p := newProvider()
	creds := map[string]string{fieldClientID: "id-1234", fieldClientSecret: "secret-1234"}
	tests := map[string]struct {
		settings map[string]string
		creds    map[string]string
		host     string
		kind     provider.Kind
	}{
		"default country":     {nil, creds, "https://api.rappi.cl", 0},
		"mexico":              {map[string]string{fieldCountry: "mx"}, creds, "https://api.rappi.com.mx", 0},
		"base_url wins":       {map[string]string{fieldCountry: "BR", provider.BaseURLField: "https://api.dev.rappi.com/"}, creds, "https://api.dev.rappi.com", 0},
		"unknown country":     {map[string]string{fieldCountry: "ZZ"}, creds, "", provider.KindInvalid},
		"unknown with base":   {map[string]string{fieldCountry: "ZZ", provider.BaseURLField: "http://127.0.0.1:9"}, creds, "http://127.0.0.1:9", 0},
		"base_url not http":   {map[string]string{provider.BaseURLField: "ftp://x"}, creds, "", provider.KindInvalid},
		"base_url with query": {map[string]string{provider.BaseURLField: "https://x/?a=b"}, creds, "", provider.KindInvalid},
		"no client_id":        {nil, map[string]string{fieldClientSecret: "s"}, "", provider.KindUnauthorized},
		"no client_secret":    {nil, map[string]string{fieldClientID: "i"}, "", provider.KindUnauthorized},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := p.newClient(providertest.Tenant("acme", tc.settings, tc.creds))
			if provider.KindOf(err) != tc.kind {
				t.Fatalf("err = %v (kind %s), want %s", err, provider.KindOf(err), tc.kind)
			}
			if err == nil && c.base != tc.host {
				t.Fatalf("host = %q, want %q", c.base, tc.host)
			}
		})
	}
}

func TestDeadline(t *testing.T) {
	f := startFake(t)
	p := newProvider()
	tn := testTenant(f.URL())
	f.SetDelay(time.Hour)
	defer f.SetDelay(0)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := p.CreateShipment(ctx, createReq(tn, "slow"))
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("returned after %s", took)
	}
	if provider.KindOf(err) != provider.KindRetryable || !provider.IsTimeout(err) {
		t.Fatalf("err = %v (kind %s, timeout %v), want a retryable timeout", err, provider.KindOf(err), provider.IsTimeout(err))
	}
}

// TestSecretsNeverLeak points the plugin at a hostile server that echoes
// the credentials and the token back in its error messages.
func TestSecretsNeverLeak(t *testing.T) {
	const (
		id     = "client-id-SENTINEL-1"
		secret = "client-secret-SENTINEL-2"
		token  = "token-SENTINEL-3"
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == wire.TokenPath {
			if strings.Contains(string(body), "fail-login") {
				w.WriteHeader(400)
				_ = json.NewEncoder(w).Encode(wire.ErrorBody{Code: "bad " + id, Message: "bad request " + string(body)})
				return
			}
			_ = json.NewEncoder(w).Encode(wire.TokenResponse{AccessToken: token})
			return
		}
		w.WriteHeader(400)
		_ = json.NewEncoder(w).Encode(wire.ErrorBody{Code: "echo", Message: "you sent " + r.Header.Get(wire.AuthHeader) + " " + id + " " + secret})
	}))
	defer srv.Close()
	var logs bytes.Buffer
	ctx := provider.WithLogger(ctxT(t), slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	p := newProvider()
	tn := providertest.Tenant("acme", map[string]string{provider.BaseURLField: srv.URL}, map[string]string{fieldClientID: id, fieldClientSecret: secret})
	_, err1 := p.Quote(ctx, quoteReq(tn))
	failing := providertest.Tenant("acme", map[string]string{provider.BaseURLField: srv.URL}, map[string]string{fieldClientID: id, fieldClientSecret: secret + "-fail-login"})
	_, err2 := p.Quote(ctx, quoteReq(failing))
	for i, err := range []error{err1, err2} {
		if provider.KindOf(err) != provider.KindInvalid {
			t.Fatalf("err %d = %v (kind %s), want invalid", i, err, provider.KindOf(err))
		}
		for _, s := range []string{id, secret, token} {
			if strings.Contains(err.Error(), s) || strings.Contains(provider.CodeOf(err), s) {
				t.Errorf("error %d leaks %s: %v", i, s[:6], err)
			}
		}
	}
	for _, s := range []string{id, secret, token} {
		if strings.Contains(logs.String(), s) {
			t.Errorf("logs leak %s: %s", s[:6], logs.String())
		}
	}
	if !strings.Contains(err1.Error(), "[redacted]") {
		t.Errorf("error does not show the redaction: %v", err1)
	}
}

func TestUnknownStatusReadAsPending(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == wire.TokenPath {
			_ = json.NewEncoder(w).Encode(wire.TokenResponse{AccessToken: "tok", ExpiresIn: 60})
			return
		}
		_ = json.NewEncoder(w).Encode(wire.Delivery{ID: "9", Status: "SOMETHING_NEW", Fee: &wire.Money{Amount: 100, Currency: "mxn"}})
	}))
	defer srv.Close()
	tn := providertest.Tenant("acme", map[string]string{provider.BaseURLField: srv.URL}, map[string]string{fieldClientID: "id", fieldClientSecret: "secret"})
	sh, err := newProvider().GetShipment(ctxT(t), delivery.GetRequest{Tenant: tn, ID: "9"})
	if err != nil || sh.Status != delivery.StatusPending || sh.Fee.Currency != "MXN" {
		t.Fatalf("shipment %+v, %v", sh, err)
	}
}

// verifySignature checks Rappi-Signature as Rappi documents it (the core
// does this in production).
func verifySignature(header, secret string, body []byte) error {
	var ts, sign string
	for _, item := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(item, "=")
		switch k {
		case "t":
			ts = v
		case "sign":
			sign = v
		}
	}
	if _, err := strconv.ParseInt(ts, 10, 64); err != nil {
		return errors.New("t is not a unix time")
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "." + string(body)))
	if !hmac.Equal([]byte(hex.EncodeToString(mac.Sum(nil))), []byte(sign)) {
		return errors.New("sign mismatch")
	}
	return nil
}

// TestWebhookRoundTrip drives a delivery through the fake, receives its
// signed webhooks as the gateway would, and parses them.
func TestWebhookRoundTrip(t *testing.T) {
	f := startFake(t)
	p := newProvider()
	tn := testTenant(f.URL())
	var mu sync.Mutex
	var events []provider.Event
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := verifySignature(r.Header.Get("Rappi-Signature"), tn.Secret(fieldWebhookSecret).Reveal(), body); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		evs, err := p.ParseWebhook(r.Context(), provider.WebhookRequest{Tenant: tn, Headers: r.Header, Body: body})
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		events = append(events, evs...)
		mu.Unlock()
	}))
	defer recv.Close()
	f.SetWebhook(recv.URL, tn.Secret(fieldWebhookSecret).Reveal())

	sh, err := p.CreateShipment(ctxT(t), createReq(tn, "hooks"))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := f.Advance(sh.ID); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"delivery.assigned", "delivery.picked_up", "delivery.completed"}
	if len(events) != len(want) {
		t.Fatalf("events %+v, want %v", events, want)
	}
	for i, e := range events {
		if e.Type != want[i] || e.Subject != sh.ID || e.ID == "" || e.OccurredAt.IsZero() {
			t.Fatalf("event %d = %+v, want %s about %s", i, e, want[i], sh.ID)
		}
	}
	var d eventData
	if err := json.Unmarshal(events[0].Data, &d); err != nil || d.Courier == nil || d.Courier.Location == nil || d.ProviderDeliveryID != sh.ID {
		t.Fatalf("assigned data %s (%v)", events[0].Data, err)
	}
}
