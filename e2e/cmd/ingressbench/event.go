package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"time"
)

// seqWidth is the number of decimal digits of the sequence number that
// makes every generated event unique.
const seqWidth = 12

// piPrefix starts every generated payment intent id; the receiver reads the
// sequence number back from what follows it.
const piPrefix = "pi_bench_"

// eventMaker renders Stripe payment_intent.succeeded events of about
// 1.5 KB. Each carries one sequence number, written at fixed offsets of a
// template, so that a worker reuses one buffer and patches only the digits:
// the event id (evt_bench_…), the payment intent id (pi_bench_…) and the
// fields that repeat it. An eventMaker is read-only once made and safe for
// concurrent use; the buffers it fills are not.
type eventMaker struct {
	tmpl  []byte
	slots []int // offsets of the seqWidth-digit placeholders in tmpl
}

// newEventMaker returns a maker whose events say they were created at
// created.
func newEventMaker(created time.Time) *eventMaker {
	ph := string(bytes.Repeat([]byte{'#'}, seqWidth))
	ts := created.Unix()
	body := fmt.Sprintf(`{"id":"evt_bench_%[1]s","object":"event","api_version":"2023-10-16","created":%[2]d,`+
		`"data":{"object":{"id":"%[3]s%[1]s","object":"payment_intent","amount":12990,"amount_capturable":0,`+
		`"amount_details":{"tip":{}},"amount_received":12990,"application":null,"application_fee_amount":null,`+
		`"automatic_payment_methods":{"allow_redirects":"always","enabled":true},"canceled_at":null,`+
		`"cancellation_reason":null,"capture_method":"automatic","client_secret":"%[3]s%[1]s_secret_Xq2Lm9RtVb4NcZ8wPd3Ks7Jf",`+
		`"confirmation_method":"automatic","created":%[4]d,"currency":"clp","customer":"cus_QxBenchCustomer01",`+
		`"description":"Table 7: two coffees, one cake","invoice":null,"last_payment_error":null,`+
		`"latest_charge":"ch_bench_%[1]s","livemode":false,"metadata":{"reference":"order-%[1]s","table":"7"},`+
		`"next_action":null,"on_behalf_of":null,"payment_method":"pm_1QxR3bBenchMethod0001",`+
		`"payment_method_options":{"card":{"installments":null,"mandate_options":null,"network":null,"request_three_d_secure":"automatic"}},`+
		`"payment_method_types":["card"],"processing":null,"receipt_email":"ana@example.com","review":null,`+
		`"setup_future_usage":null,"shipping":null,"source":null,"statement_descriptor":null,"statement_descriptor_suffix":null,`+
		`"status":"succeeded","transfer_data":null,"transfer_group":null}},"livemode":false,"pending_webhooks":1,`+
		`"request":{"id":"req_Vd3kq9ZtR2mN8x","idempotency_key":"d3c1f0a2-6b8e-4f57-9c1a-2e7b5d9f4a61"},`+
		`"type":"payment_intent.succeeded"}`, ph, ts, piPrefix, ts-40)
	m := &eventMaker{tmpl: []byte(body)}
	for off := 0; ; {
		i := bytes.Index(m.tmpl[off:], []byte(ph))
		if i < 0 {
			break
		}
		m.slots = append(m.slots, off+i)
		off += i + seqWidth
	}
	m.put(m.tmpl, 0)
	return m
}

// size is the length of every event.
func (m *eventMaker) size() int { return len(m.tmpl) }

// fresh returns a new buffer holding the template.
func (m *eventMaker) fresh() []byte { return bytes.Clone(m.tmpl) }

// put writes seq into a buffer from fresh.
func (m *eventMaker) put(buf []byte, seq uint64) {
	var digits [seqWidth]byte
	for i := seqWidth - 1; i >= 0; i-- {
		digits[i] = byte('0' + seq%10)
		seq /= 10
	}
	for _, off := range m.slots {
		copy(buf[off:off+seqWidth], digits[:])
	}
}

// seqOf reads the sequence number back from a payment intent id.
func seqOf(pi string) (uint64, bool) {
	if len(pi) != len(piPrefix)+seqWidth || pi[:len(piPrefix)] != piPrefix {
		return 0, false
	}
	n, err := strconv.ParseUint(pi[len(piPrefix):], 10, 64)
	return n, err == nil
}

// signer computes Stripe-Signature headers ("t=<unix>,v1=<hex hmac>", the
// HMAC-SHA256 of "<unix>.<body>") with one reused MAC. Not safe for
// concurrent use: one per worker.
type signer struct {
	mac hash.Hash
	hdr []byte
	sum []byte
}

func newSigner(secret string) *signer {
	return &signer{mac: hmac.New(sha256.New, []byte(secret)), hdr: make([]byte, 0, 96), sum: make([]byte, 0, sha256.Size)}
}

// sign returns the header for body at unix time ts. The result is valid
// until the next call.
func (s *signer) sign(body []byte, ts int64) []byte {
	s.hdr = append(s.hdr[:0], "t="...)
	s.hdr = strconv.AppendInt(s.hdr, ts, 10)
	s.mac.Reset()
	s.mac.Write(s.hdr[2:])
	s.mac.Write([]byte{'.'})
	s.mac.Write(body)
	s.sum = s.mac.Sum(s.sum[:0])
	s.hdr = append(s.hdr, ",v1="...)
	return hex.AppendEncode(s.hdr, s.sum)
}

// stripeTolerance is how far a signature's timestamp may be from the
// receiver's clock, as Stripe's libraries default to.
const stripeTolerance = 300 * time.Second

var (
	errSigHeader = errors.New("malformed Stripe-Signature header")
	errSigStale  = errors.New("signature timestamp outside the tolerance")
	errSigMatch  = errors.New("no v1 signature matches")
)

// verifyStripe checks a Stripe-Signature header over body the way a bare
// receiver would: parse t and every v1, check the timestamp, recompute the
// HMAC with a new MAC, compare in constant time.
func verifyStripe(secret []byte, header, body []byte, now time.Time) error {
	var ts int64 = -1
	var sigs [][]byte
	for len(header) > 0 {
		var item []byte
		item, header, _ = bytes.Cut(header, []byte{','})
		k, v, ok := bytes.Cut(bytes.TrimSpace(item), []byte{'='})
		if !ok {
			continue
		}
		switch string(k) {
		case "t":
			n, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				return errSigHeader
			}
			ts = n
		case "v1":
			sigs = append(sigs, v)
		}
	}
	if ts < 0 || len(sigs) == 0 {
		return errSigHeader
	}
	if d := now.Sub(time.Unix(ts, 0)); d > stripeTolerance || d < -stripeTolerance {
		return errSigStale
	}
	mac := hmac.New(sha256.New, secret)
	var prefix [24]byte
	mac.Write(append(strconv.AppendInt(prefix[:0], ts, 10), '.'))
	mac.Write(body)
	want := mac.Sum(nil)
	var got [sha256.Size]byte
	for _, sig := range sigs {
		if len(sig) != hex.EncodedLen(sha256.Size) {
			continue
		}
		if _, err := hex.Decode(got[:], sig); err == nil && hmac.Equal(got[:], want) {
			return nil
		}
	}
	return errSigMatch
}
