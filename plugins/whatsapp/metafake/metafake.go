// Package metafake is an in-process fake of Meta's WhatsApp Cloud API for
// tests: the send endpoint of the Graph API and the webhooks Meta posts
// back, following the documented wire format (PipeCore's providers.md §6).
//
// API: POST /{version}/{phone-number-id}/messages, where version looks
// like "v21.0" and the phone number id is PhoneNumberID.
//
//   - Auth: "Authorization: Bearer <AccessToken>"; a missing or wrong
//     token is 401 with Graph error code 190 (type OAuthException).
//   - Body: JSON with messaging_product "whatsapp", to (E.164 digits, an
//     optional "+"), type and the object of that type: text.body for
//     "text"; template.name and template.language.code for "template".
//     A missing or invalid field is 400 with Graph code 100; an unknown
//     phone number id is 400 with code 100 (GraphMethodException).
//   - Success: 200 {"messaging_product":"whatsapp","contacts":[{"input",
//     "wa_id"}],"messages":[{"id":"wamid.…"}]}.
//   - FailNext(status, n) makes the next n API requests fail with status
//     and a Graph error body (401 → 190, 429 → 130429, 400 → 100, 5xx →
//     131000 or 2), before auth is checked.
//
// Every error body is {"error":{"message","type","code","error_data":
// {"messaging_product","details"}?,"fbtrace_id"}}.
//
// Webhooks: SetWebhook names the URL and the app secret. Status and
// Inbound POST one "whatsapp_business_account" notification (one entry,
// one change of field "messages") synchronously, signed as Meta signs:
// "X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body keyed by the
// app secret>". As Meta does, the body escapes every non-ASCII character
// (\uXXXX), so the signature covers pure-ASCII bytes.
//
// A Server is safe for concurrent use. Close stops it; every listener is
// bound to 127.0.0.1.
package metafake

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/pipecore/pipecore/sdk/providertest/fakehttp"
)

// The credentials and number the fake accepts.
const (
	PhoneNumberID = "1065550001"
	AccessToken   = "meta-test-token"
	DisplayPhone  = "+56911110000"
)

// wabaID is the WhatsApp Business Account id in webhooks.
const wabaID = "1065550000"

// Request is one API request the fake received.
type Request = fakehttp.Request

// Server is a running fake. Create it with Start.
type Server struct {
	api *fakehttp.Server

	mu         sync.Mutex
	sent       []map[string]any
	recipients map[string]string // wamid → to
	hookURL    string
	hookSecret string
}

// Start starts a fake on 127.0.0.1.
func Start() *Server {
	s := &Server{sent: []map[string]any{}, recipients: map[string]string{}, api: fakehttp.New(fakehttp.Options{Name: "metafake"})}
	s.api.Start(http.HandlerFunc(s.serve))
	return s
}

// URL is the base URL to use as the plugin's base_url, e.g.
// "http://127.0.0.1:41234".
func (s *Server) URL() string { return s.api.URL() }

// Close stops the fake and waits for its requests to end.
func (s *Server) Close() { s.api.Close() }

// FailNext makes the next n API requests answer status with a Graph error
// body. n <= 0 clears it.
func (s *Server) FailNext(status, n int) { s.api.FailNext(status, n) }

// SetWebhook sets where webhooks are POSTed and the app secret that signs
// them.
func (s *Server) SetWebhook(url, appSecret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hookURL, s.hookSecret = url, appSecret
}

// Requests returns every API request received, in order.
func (s *Server) Requests() []Request { return s.api.Requests() }

// Sent returns the decoded bodies of the messages the fake accepted, in
// order.
func (s *Server) Sent() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fakehttp.CloneJSON(s.sent)
}

var (
	messagesPath = regexp.MustCompile(`^/(v[0-9]+\.[0-9]+)/([^/]+)/messages$`)
	recipient    = regexp.MustCompile(`^\+?[1-9][0-9]{6,14}$`)
)

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	s.api.Record(r, body)
	if status, fail := s.api.TakeFailure(); fail {
		failWith(w, status)
		return
	}

	if r.Header.Get("Authorization") != "Bearer "+AccessToken {
		graphError(w, http.StatusUnauthorized, 190, "OAuthException", "Invalid OAuth access token - Cannot parse access token", "")
		return
	}
	m := messagesPath.FindStringSubmatch(r.URL.Path)
	if m == nil {
		graphError(w, http.StatusBadRequest, 2500, "OAuthException", "Unknown path components: "+r.URL.Path, "")
		return
	}
	if r.Method != http.MethodPost {
		graphError(w, http.StatusBadRequest, 100, "GraphMethodException", "Unsupported get request.", "")
		return
	}
	if m[2] != PhoneNumberID {
		graphError(w, http.StatusBadRequest, 100, "GraphMethodException",
			fmt.Sprintf("Unsupported post request. Object with ID '%s' does not exist, cannot be loaded due to missing permissions, or does not support this operation.", m[2]), "")
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		graphError(w, http.StatusBadRequest, 100, "OAuthException", "(#100) Invalid parameter", "Content-Type must be application/json")
		return
	}
	var msg map[string]any
	if err := json.Unmarshal(body, &msg); err != nil {
		graphError(w, http.StatusBadRequest, 100, "OAuthException", "(#100) Invalid parameter", "request body is not JSON")
		return
	}
	if detail := validate(msg); detail != "" {
		graphError(w, http.StatusBadRequest, 100, "OAuthException", "(#100) Invalid parameter", detail)
		return
	}
	to := msg["to"].(string)
	wamid := newWAMID()
	s.mu.Lock()
	s.sent = append(s.sent, msg)
	s.recipients[wamid] = strings.TrimPrefix(to, "+")
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"messaging_product": "whatsapp",
		"contacts":          []any{map[string]any{"input": to, "wa_id": strings.TrimPrefix(to, "+")}},
		"messages":          []any{map[string]any{"id": wamid}},
	})
}

// validate returns what is wrong with a send body, or "".
func validate(msg map[string]any) string {
	str := func(v any) string { s, _ := v.(string); return s }
	obj := func(v any) map[string]any { o, _ := v.(map[string]any); return o }
	if str(msg["messaging_product"]) != "whatsapp" {
		return "The parameter messaging_product is required and must be whatsapp."
	}
	to := str(msg["to"])
	if to == "" {
		return "The parameter to is required."
	}
	if !recipient.MatchString(to) {
		return "Invalid phone number: " + to
	}
	switch typ := str(msg["type"]); typ {
	case "":
		return "The parameter type is required."
	case "text":
		if str(obj(msg["text"])["body"]) == "" {
			return "The parameter text['body'] is required."
		}
	case "template":
		t := obj(msg["template"])
		if str(t["name"]) == "" {
			return "The parameter template['name'] is required."
		}
		if str(obj(t["language"])["code"]) == "" {
			return "The parameter template['language']['code'] is required."
		}
	case "image", "audio", "video", "document", "sticker", "location", "contacts", "interactive", "reaction":
		if obj(msg[typ]) == nil {
			return "The parameter " + typ + " is required."
		}
	default:
		return "Invalid parameter type: " + typ
	}
	return ""
}

func failWith(w http.ResponseWriter, status int) {
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		graphError(w, status, 190, "OAuthException", "Error validating access token: Session has expired.", "")
	case status == http.StatusTooManyRequests:
		graphError(w, status, 130429, "OAuthException", "(#130429) Rate limit hit", "Cloud API message throughput has been reached.")
	case status == http.StatusServiceUnavailable:
		graphError(w, status, 2, "OAuthException", "Service temporarily unavailable", "")
	case status >= 500:
		graphError(w, status, 131000, "OAuthException", "(#131000) Something went wrong", "Something went wrong.")
	default:
		graphError(w, status, 100, "OAuthException", "(#100) Invalid parameter", "FailNext")
	}
}

func graphError(w http.ResponseWriter, status, code int, typ, message, details string) {
	e := map[string]any{"message": message, "type": typ, "code": code, "fbtrace_id": "A" + randomHex(11)}
	if details != "" {
		e["error_data"] = map[string]any{"messaging_product": "whatsapp", "details": details}
	}
	writeJSON(w, status, map[string]any{"error": e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Status posts a statuses[] webhook for wamid: status is "sent",
// "delivered", "read" or "failed" (failed carries errors[] with code
// 131026, "Message undeliverable"). The recipient is the send's "to" when
// the fake sent wamid. It returns after the webhook was answered; a
// non-2xx answer is an error.
func (s *Server) Status(wamid, status string) error {
	switch status {
	case "sent", "delivered", "read", "failed":
	default:
		return fmt.Errorf("metafake: status %q must be sent, delivered, read or failed", status)
	}
	s.mu.Lock()
	to := s.recipients[wamid]
	s.mu.Unlock()
	st := map[string]any{
		"id": wamid, "status": status, "timestamp": timestamp(), "recipient_id": to,
	}
	if status != "failed" {
		st["conversation"] = map[string]any{"id": randomHex(16), "origin": map[string]any{"type": "utility"}}
		st["pricing"] = map[string]any{"billable": true, "pricing_model": "CBP", "category": "utility"}
	} else {
		st["errors"] = []any{map[string]any{
			"code": 131026, "title": "Message undeliverable", "message": "Message undeliverable",
			"error_data": map[string]any{"details": "Message Undeliverable."},
		}}
	}
	return s.post(map[string]any{"statuses": []any{st}})
}

// Inbound posts a messages[] webhook: a text message from the number from
// (E.164, with or without "+") to DisplayPhone. It returns the new
// message's wamid after the webhook was answered; a non-2xx answer is an
// error.
func (s *Server) Inbound(from, text string) (string, error) {
	from = strings.TrimPrefix(from, "+")
	wamid := newWAMID()
	err := s.post(map[string]any{
		"contacts": []any{map[string]any{"profile": map[string]any{"name": "Test User"}, "wa_id": from}},
		"messages": []any{map[string]any{
			"from": from, "id": wamid, "timestamp": timestamp(), "type": "text",
			"text": map[string]any{"body": text},
		}},
	})
	return wamid, err
}

// post wraps value in a notification, signs it and POSTs it.
func (s *Server) post(value map[string]any) error {
	s.mu.Lock()
	hookURL, secret := s.hookURL, s.hookSecret
	s.mu.Unlock()
	if hookURL == "" {
		return errors.New("metafake: no webhook URL (call SetWebhook)")
	}
	value["messaging_product"] = "whatsapp"
	value["metadata"] = map[string]any{
		"display_phone_number": strings.TrimPrefix(DisplayPhone, "+"),
		"phone_number_id":      PhoneNumberID,
	}
	n := map[string]any{
		"object": "whatsapp_business_account",
		"entry": []any{map[string]any{
			"id":      wabaID,
			"changes": []any{map[string]any{"value": value, "field": "messages"}},
		}},
	}
	raw, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("metafake: encode webhook: %w", err)
	}
	body := escapeNonASCII(raw)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return s.api.PostWebhook(hookURL, http.Header{
		"Content-Type":        {"application/json"},
		"User-Agent":          {"facebookexternalua"},
		"X-Hub-Signature-256": {"sha256=" + hex.EncodeToString(mac.Sum(nil))},
	}, body)
}

// escapeNonASCII rewrites every non-ASCII character of a JSON document as
// \uXXXX (a surrogate pair above U+FFFF), as Meta's payloads are. Outside
// strings JSON is ASCII, so a byte-level pass is safe.
func escapeNonASCII(b []byte) []byte {
	var out bytes.Buffer
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		switch {
		case r < utf8.RuneSelf:
			out.WriteByte(b[0])
		case r > 0xFFFF:
			r1, r2 := utf16.EncodeRune(r)
			fmt.Fprintf(&out, `\u%04x\u%04x`, r1, r2)
		default:
			fmt.Fprintf(&out, `\u%04x`, r)
		}
		b = b[size:]
	}
	return out.Bytes()
}

func timestamp() string { return strconv.FormatInt(time.Now().Unix(), 10) }

// newWAMID returns a fresh message id shaped like Meta's.
func newWAMID() string {
	b := make([]byte, 30)
	_, _ = rand.Read(b)
	return "wamid." + base64.RawURLEncoding.EncodeToString(b)
}

func randomHex(n int) string {
	b := make([]byte, (n+1)/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n]
}
