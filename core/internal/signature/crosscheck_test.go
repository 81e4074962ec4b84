package signature

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/pipecore/pipecore/sdk/provider"
)

// These tests compare Verify with independent implementations: stripe-go
// v76's webhook package and the Standard Webhooks Go library (v0.0.1). Both
// read the wall clock, so these tests use time.Now rather than testNow.

// stripeEventBody has the API version stripe-go v76 expects, so that
// ConstructEvent can be used without IgnoreAPIVersionMismatch as well.
var stripeEventBody = []byte(`{"id":"evt_cross","object":"event","api_version":"2023-10-16","type":"charge.succeeded","data":{"object":{"id":"ch_1"}}}`)

func TestCrossCheckStripeGo(t *testing.T) {
	t.Parallel()
	const secret = "whsec_crossCheckSecret"
	now := time.Now()
	stripeReq := func(h string, body []byte) Request {
		return Request{Method: "POST", Header: headers("Stripe-Signature", h), Body: body}
	}

	t.Run("stripe-go signs, Verify accepts", func(t *testing.T) {
		t.Parallel()
		for name, at := range map[string]time.Time{"now": now, "290s old": now.Add(-290 * time.Second), "an hour ahead": now.Add(time.Hour)} {
			signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: stripeEventBody, Secret: secret, Timestamp: at})
			if err := Verify(provider.SchemeStripe, stripeReq(signed.Header, stripeEventBody), []string{secret}, Options{}); err != nil {
				t.Errorf("%s: Verify(stripe-go header) = %v", name, err)
			}
		}
	})

	t.Run("Verify's signer, stripe-go accepts", func(t *testing.T) {
		t.Parallel()
		h := stripeSign(secret, now.Unix(), stripeEventBody)
		if err := webhook.ValidatePayload(stripeEventBody, h, secret); err != nil {
			t.Fatalf("stripe-go ValidatePayload = %v", err)
		}
		if _, err := webhook.ConstructEventWithOptions(stripeEventBody, h, secret, webhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true}); err != nil {
			t.Fatalf("stripe-go ConstructEventWithOptions = %v", err)
		}
		if err := Verify(provider.SchemeStripe, stripeReq(h, stripeEventBody), []string{secret}, Options{}); err != nil {
			t.Fatalf("Verify = %v", err)
		}
	})

	// Differential: both must agree on accept/reject for each header.
	ts := strconv.FormatInt(now.Unix(), 10)
	good := stripeSign(secret, now.Unix(), stripeEventBody)
	_, v1, _ := strings.Cut(good, ",")
	old := stripeSign(secret, now.Add(-310*time.Second).Unix(), stripeEventBody)
	cases := map[string]struct {
		header string
		body   []byte
		// ours is the sentinel Verify returns where stripe-go only says no.
		ours error
	}{
		"valid":                    {header: good, body: stripeEventBody},
		"extra v1 and v0":          {header: good + ",v1=00,v0=abcd", body: stripeEventBody},
		"bad hex v1 skipped":       {header: "t=" + ts + ",v1=xyz," + v1, body: stripeEventBody},
		"upper-case key":           {header: "t=" + ts + "," + strings.ToUpper(v1[:2]) + v1[2:], body: stripeEventBody, ours: ErrMismatch},
		"upper-case hex":           {header: "t=" + ts + ",v1=" + strings.ToUpper(v1[3:]), body: stripeEventBody},
		"an hour ahead":            {header: stripeSign(secret, now.Add(time.Hour).Unix(), stripeEventBody), body: stripeEventBody},
		"tampered body":            {header: good, body: append([]byte(" "), stripeEventBody...), ours: ErrMismatch},
		"too old":                  {header: old, body: stripeEventBody, ours: ErrTimestamp},
		"item without =":           {header: good + ",junk", body: stripeEventBody, ours: ErrMalformed},
		"t not an integer":         {header: "t=x," + v1, body: stripeEventBody, ours: ErrMalformed},
		"no v1":                    {header: "t=" + ts, body: stripeEventBody, ours: ErrMismatch},
		"empty":                    {header: "", body: stripeEventBody, ours: ErrMissingSignature},
		"wrong secret's signature": {header: stripeSign("whsec_other", now.Unix(), stripeEventBody), body: stripeEventBody, ours: ErrMismatch},
	}
	for name, c := range cases {
		t.Run("differential/"+name, func(t *testing.T) {
			t.Parallel()
			theirs := webhook.ValidatePayload(c.body, c.header, secret)
			ours := Verify(provider.SchemeStripe, stripeReq(c.header, c.body), []string{secret}, Options{})
			if (theirs == nil) != (ours == nil) {
				t.Fatalf("stripe-go = %v, Verify = %v", theirs, ours)
			}
			checkErr(t, ours, c.ours, secret)
		})
	}
}

func TestCrossCheckStandardWebhooks(t *testing.T) {
	t.Parallel()
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"type":"payment.confirmed","data":{"id":"pay_1"}}`)
	now := time.Now()

	t.Run("library signs, Verify accepts both header sets", func(t *testing.T) {
		t.Parallel()
		for name, at := range map[string]time.Time{"now": now, "290s old": now.Add(-290 * time.Second), "290s ahead": now.Add(290 * time.Second)} {
			sig, err := wh.Sign("msg_cross", at, body)
			if err != nil {
				t.Fatal(err)
			}
			ts := strconv.FormatInt(at.Unix(), 10)
			for _, names := range [][3]string{standardHeaders, svixHeaders} {
				r := Request{Method: "POST", Body: body, Header: headers(names[0], "msg_cross", names[1], ts, names[2], sig)}
				if err := Verify(provider.SchemeSvix, r, []string{secret}, Options{}); err != nil {
					t.Errorf("%s, %s: Verify(library signature) = %v", name, names[2], err)
				}
			}
		}
	})

	t.Run("Verify's signer, library accepts", func(t *testing.T) {
		t.Parallel()
		ts := strconv.FormatInt(now.Unix(), 10)
		sig := svixSign(secret, "msg_cross", ts, body)
		h := http.Header{}
		h.Set(standardwebhooks.HeaderWebhookID, "msg_cross")
		h.Set(standardwebhooks.HeaderWebhookTimestamp, ts)
		h.Set(standardwebhooks.HeaderWebhookSignature, "v1,bm90IGl0 "+sig)
		if err := wh.Verify(body, h); err != nil {
			t.Fatalf("library Verify = %v", err)
		}
		if err := Verify(provider.SchemeSvix, Request{Header: h, Body: body}, []string{secret}, Options{}); err != nil {
			t.Fatalf("Verify = %v", err)
		}
	})

	// Differential over headers both sides must judge alike.
	ts := strconv.FormatInt(now.Unix(), 10)
	good := svixSign(secret, "msg_cross", ts, body)
	cases := map[string]struct {
		id, ts, sig string
		body        []byte
		ours        error
	}{
		"valid":                  {id: "msg_cross", ts: ts, sig: good, body: body},
		"two signatures":         {id: "msg_cross", ts: ts, sig: "v1,AAAA " + good, body: body},
		"tampered body":          {id: "msg_cross", ts: ts, sig: good, body: append(body, ' '), ours: ErrMismatch},
		"other id":               {id: "msg_other", ts: ts, sig: good, body: body, ours: ErrMismatch},
		"too old":                {id: "msg_cross", ts: strconv.FormatInt(now.Unix()-310, 10), sig: good, body: body, ours: ErrTimestamp},
		"too new":                {id: "msg_cross", ts: strconv.FormatInt(now.Unix()+310, 10), sig: good, body: body, ours: ErrTimestamp},
		"timestamp not a number": {id: "msg_cross", ts: "soon", sig: good, body: body, ours: ErrMalformed},
		"only v2":                {id: "msg_cross", ts: ts, sig: "v2," + strings.TrimPrefix(good, "v1,"), body: body, ours: ErrMismatch},
		"missing id":             {id: "", ts: ts, sig: good, body: body, ours: ErrMissingSignature},
	}
	for name, c := range cases {
		t.Run("differential/"+name, func(t *testing.T) {
			t.Parallel()
			h := http.Header{}
			for k, v := range map[string]string{standardwebhooks.HeaderWebhookID: c.id, standardwebhooks.HeaderWebhookTimestamp: c.ts, standardwebhooks.HeaderWebhookSignature: c.sig} {
				if v != "" {
					h.Set(k, v)
				}
			}
			theirs := wh.Verify(c.body, h)
			ours := Verify(provider.SchemeSvix, Request{Header: h, Body: c.body}, []string{secret}, Options{})
			if (theirs == nil) != (ours == nil) {
				t.Fatalf("library = %v, Verify = %v", theirs, ours)
			}
			checkErr(t, ours, c.ours, secret)
		})
	}
}
