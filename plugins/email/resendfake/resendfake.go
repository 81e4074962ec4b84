// Package resendfake is an in-process fake of Resend for tests: the
// POST /emails API and Svix-signed webhooks, following the wire format in
// providers.md §9.
//
// # Sending
//
// The fake serves POST /emails on 127.0.0.1 (an httptest server). Like
// Resend it wants "Authorization: Bearer <key>" (APIKey is the only key it
// accepts) and a JSON body {from, to, subject, html, text, reply_to,
// attachments, tags, headers}, and answers
//
//   - 200 {"id":"<uuid>"} for a valid email;
//   - 401 missing_api_key without a key, 403 invalid_api_key for a wrong
//     one; 400 validation_error for malformed JSON; 422
//     missing_required_field when from, to or subject is missing, 422
//     validation_error for an address that is not "email@example.com" or
//     "Name <email@example.com>" or for an email with neither html nor
//     text, 422 invalid_attachment for an attachment without content or
//     path (or whose content is not base64); 404 not_found and 405
//     method_not_allowed for other paths and methods;
//
// every error with Resend's body {"statusCode","name","message"}.
//
// The Idempotency-Key header is honoured: a key must be 1 to 256
// characters (else 400 invalid_idempotency_key); the same key with the same
// body answers the first id again without sending anything, the same key
// with another body answers 409 invalid_idempotent_request. Keys do not
// expire.
//
// FailNext makes the next requests fail with a chosen status and the error
// name Resend uses for it (a 429 carries retry-after: 1 and the ratelimit-*
// headers).
//
// # Webhooks
//
// After SetWebhook, Event posts {"type","created_at","data":{...}} to the
// URL, signed with the Svix scheme: headers svix-id ("msg_…", new for every
// call), svix-timestamp (unix seconds) and svix-signature ("v1," + base64
// HMAC-SHA256 over "<svix-id>.<svix-timestamp>.<body>" keyed with the
// base64-decoded secret after its "whsec_" prefix). data holds email_id,
// created_at, from, to, subject and tags (an object, name → value) of the
// sent email, the typical field of the event type (bounce {message,
// subType, type} for email.bounced, failed {reason} for email.failed,
// suppressed {message, type} for email.suppressed, click {…} for
// email.clicked), then extra.
//
// A Server is safe for concurrent use. Close stops it.
package resendfake

import (
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
	"net/mail"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pipecore/pipecore/sdk/providertest/fakehttp"
)

// APIKey is the only API key the fake accepts.
const APIKey = "re_test_key"

// WebhookSecret is the default signing secret of the fake's webhooks (used
// when SetWebhook is given ""): "whsec_" followed by the base64 of the
// ASCII bytes "test-resend-webhook-secret". Give the same value to the
// tenant's webhook_secret credential.
const WebhookSecret = "whsec_dGVzdC1yZXNlbmQtd2ViaG9vay1zZWNyZXQ="

const (
	emailsPath = "/emails"
	// maxBody bounds a request body the fake reads (Resend's limit is
	// 40 MB after encoding).
	maxBody = 40 << 20
	// maxIdempotencyKey is the longest Idempotency-Key Resend accepts.
	maxIdempotencyKey = 256
)

// Request is one HTTP request the fake received.
type Request = fakehttp.Request

// Server is a running fake. Create it with Start.
type Server struct {
	api *fakehttp.Server

	mu      sync.Mutex
	sent    []map[string]any
	emails  map[string]email // id -> what events need
	keys    map[string]idempotent
	webhook string
	secret  string
}

// email is what the fake keeps of a sent email for its events.
type email struct {
	from, subject string
	to            []string
	tags          map[string]string
	createdAt     string
}

// idempotent is the first answer to an Idempotency-Key.
type idempotent struct {
	fingerprint [sha256.Size]byte
	id          string
}

// Start starts a fake on 127.0.0.1.
func Start() *Server {
	s := &Server{
		api:    fakehttp.New(fakehttp.Options{Name: "resendfake"}),
		sent:   []map[string]any{},
		emails: make(map[string]email),
		keys:   make(map[string]idempotent),
		secret: WebhookSecret,
	}
	s.api.Start(http.HandlerFunc(s.serve))
	return s
}

// URL is the fake's base URL (scheme://127.0.0.1:port), the value for a
// tenant's base_url setting.
func (s *Server) URL() string { return s.api.URL() }

// Close stops the server and drops idle webhook connections.
func (s *Server) Close() { s.api.Close() }

// FailNext makes the next n requests, whatever their path or key, fail with
// status and Resend's error body. n <= 0 cancels a pending failure.
func (s *Server) FailNext(status, n int) { s.api.FailNext(status, n) }

// SetWebhook sets the URL Event posts to and the "whsec_…" secret it signs
// with; "" as secret means WebhookSecret, "" as url turns the webhook off.
func (s *Server) SetWebhook(url, secret string) {
	if secret == "" {
		secret = WebhookSecret
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.webhook, s.secret = url, secret
}

// Requests returns a copy of every request received, in order.
func (s *Server) Requests() []Request { return s.api.Requests() }

// Sent returns the decoded JSON bodies of the emails sent, in order. A
// request answered from an earlier Idempotency-Key is not a new email and
// is not listed again.
func (s *Server) Sent() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fakehttp.CloneJSON(s.sent)
}

// Event posts one Resend webhook event about the email emailID (an id the
// fake returned) to the webhook URL, Svix-signed, and waits for the
// answer; a non-2xx answer is an error. eventType is Resend's type, e.g.
// "email.delivered", "email.bounced", "email.opened", "email.complained".
// extra is merged last into data (a nil value removes a key). An emailID
// the fake did not issue is allowed; data then has placeholder from, to
// and subject.
func (s *Server) Event(emailID, eventType string, extra map[string]any) error {
	s.mu.Lock()
	url, secret := s.webhook, s.secret
	e, known := s.emails[emailID]
	s.mu.Unlock()
	if url == "" {
		return errors.New("resendfake: no webhook URL set (call SetWebhook)")
	}
	now := time.Now().UTC()
	if !known {
		e = email{from: "Acme <no-reply@acme.example>", to: []string{"recipient@example.com"}, subject: "(unknown email)", createdAt: now.Format(timeLayout)}
	}
	tags := map[string]any{}
	for k, v := range e.tags {
		tags[k] = v
	}
	data := map[string]any{
		"email_id":   emailID,
		"created_at": e.createdAt,
		"from":       e.from,
		"to":         e.to,
		"subject":    e.subject,
		"tags":       tags,
	}
	switch eventType {
	case "email.bounced":
		data["bounce"] = map[string]any{
			"message": "The recipient's email provider sent a hard bounce message: 550 5.1.1 The email account that you tried to reach does not exist.",
			"subType": "General",
			"type":    "Permanent",
		}
	case "email.failed":
		data["failed"] = map[string]any{"reason": "reached_daily_quota"}
	case "email.suppressed":
		data["suppressed"] = map[string]any{"message": "The recipient is on the suppression list because of a previous bounce.", "type": "OnAccountSuppressionList"}
	case "email.clicked":
		data["click"] = map[string]any{"ipAddress": "190.45.12.7", "link": "https://example.com/", "timestamp": now.Format(timeLayout), "userAgent": "Mozilla/5.0"}
	}
	for k, v := range extra {
		if v == nil {
			delete(data, k)
			continue
		}
		data[k] = v
	}
	body, err := json.Marshal(map[string]any{"type": eventType, "created_at": now.Format(timeLayout), "data": data})
	if err != nil {
		return fmt.Errorf("resendfake: encode event: %w", err)
	}
	return s.post(url, secret, body)
}

// timeLayout is how Resend writes times (ISO 8601, UTC, milliseconds).
const timeLayout = "2006-01-02T15:04:05.000Z"

// post signs body with the Svix scheme and posts it to url.
func (s *Server) post(url, secret string, body []byte) error {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil || len(key) == 0 {
		return errors.New("resendfake: the webhook secret is not whsec_ followed by base64")
	}
	id := "msg_" + randomToken(27)
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	return s.api.PostWebhook(url, http.Header{
		"Content-Type":   {"application/json"},
		"User-Agent":     {"Svix-Webhooks/1.62.0"},
		"svix-id":        {id},
		"svix-timestamp": {ts},
		"svix-signature": {"v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))},
	}, body)
}

// apiError is Resend's error body.
type apiError struct {
	StatusCode int    `json:"statusCode"`
	Name       string `json:"name"`
	Message    string `json:"message"`
}

func writeError(w http.ResponseWriter, status int, name, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(apiError{StatusCode: status, Name: name, Message: msg})
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	s.api.Record(r, body)
	status, failing := s.api.TakeFailure()

	switch {
	case failing:
		fail(w, status)
		return
	case err != nil || len(body) > maxBody:
		writeError(w, http.StatusUnprocessableEntity, "validation_error", "The request body is too large or could not be read.")
		return
	case r.URL.Path != emailsPath:
		writeError(w, http.StatusNotFound, "not_found", "The requested endpoint does not exist.")
		return
	case r.Method != http.MethodPost:
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "Method is not allowed for the requested path.")
		return
	}
	switch auth := r.Header.Get("Authorization"); {
	case auth == "" || auth == "Bearer":
		writeError(w, http.StatusUnauthorized, "missing_api_key", "Missing API key in the authorization header. Include the following header in the request: Authorization: Bearer YOUR_API_KEY")
		return
	case auth != "Bearer "+APIKey:
		writeError(w, http.StatusForbidden, "invalid_api_key", "API key is invalid")
		return
	}
	key, hasKey := r.Header.Get("Idempotency-Key"), len(r.Header.Values("Idempotency-Key")) > 0
	if hasKey && (key == "" || len(key) > maxIdempotencyKey) {
		writeError(w, http.StatusBadRequest, "invalid_idempotency_key", "The key must be between 1-256 chars.")
		return
	}
	var m sendEmail
	if err := json.Unmarshal(body, &m); err != nil {
		writeError(w, http.StatusBadRequest, "validation_error", "Invalid JSON in the request body.")
		return
	}
	if status, name, msg := m.validate(); status != 0 {
		writeError(w, status, name, msg)
		return
	}

	fp := sha256.Sum256(body)
	s.mu.Lock()
	if hasKey {
		if prev, ok := s.keys[key]; ok {
			s.mu.Unlock()
			if prev.fingerprint != fp {
				writeError(w, http.StatusConflict, "invalid_idempotent_request", "Same idempotency key used with a different request payload. Change your idempotency key or payload.")
				return
			}
			writeID(w, prev.id)
			return
		}
	}
	id := newUUID()
	if hasKey {
		s.keys[key] = idempotent{fingerprint: fp, id: id}
	}
	var decoded map[string]any
	_ = json.Unmarshal(body, &decoded)
	s.sent = append(s.sent, decoded)
	tags := make(map[string]string, len(m.Tags))
	for _, t := range m.Tags {
		tags[t.Name] = t.Value
	}
	s.emails[id] = email{from: m.From, to: m.To, subject: m.Subject, tags: tags, createdAt: time.Now().UTC().Format(timeLayout)}
	s.mu.Unlock()
	writeID(w, id)
}

func writeID(w http.ResponseWriter, id string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(map[string]string{"id": id})
}

// fail answers a FailNext failure with the error name Resend uses for the
// status.
func fail(w http.ResponseWriter, status int) {
	name, msg := "application_error", "An unexpected error occurred."
	switch status {
	case http.StatusBadRequest:
		name, msg = "validation_error", "We found an error with one or more fields in the request."
	case http.StatusUnauthorized:
		name, msg = "missing_api_key", "Missing API key in the authorization header."
	case http.StatusForbidden:
		name, msg = "invalid_api_key", "API key is invalid"
	case http.StatusNotFound:
		name, msg = "not_found", "The requested endpoint does not exist."
	case http.StatusConflict:
		name, msg = "concurrent_idempotent_requests", "Same idempotency key used while original request is still in progress."
	case http.StatusUnprocessableEntity:
		name, msg = "validation_error", "Invalid `to` field."
	case http.StatusTooManyRequests:
		w.Header().Set("retry-after", "1")
		w.Header().Set("ratelimit-limit", "2")
		w.Header().Set("ratelimit-remaining", "0")
		w.Header().Set("ratelimit-reset", "1")
		name, msg = "rate_limit_exceeded", "Too many requests. You can only make 2 requests per second."
	case http.StatusInternalServerError:
		name, msg = "internal_server_error", "An unexpected error occurred."
	}
	writeError(w, status, name, msg)
}

// sendEmail is the part of a POST /emails body the fake validates. to and
// reply_to may be a string or a list of strings.
type sendEmail struct {
	From        string       `json:"from"`
	To          stringList   `json:"to"`
	Subject     string       `json:"subject"`
	HTML        string       `json:"html"`
	Text        string       `json:"text"`
	ReplyTo     stringList   `json:"reply_to"`
	Attachments []attachment `json:"attachments"`
	Tags        []struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	} `json:"tags"`
}

type attachment struct {
	Filename    string `json:"filename"`
	Content     string `json:"content"`
	Path        string `json:"path"`
	ContentType string `json:"content_type"`
}

type stringList []string

func (l *stringList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*l = stringList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*l = many
	return nil
}

// validate returns the status, name and message of Resend's complaint
// about m, or a zero status.
func (m *sendEmail) validate() (int, string, string) {
	const unprocessable = http.StatusUnprocessableEntity
	switch {
	case m.From == "":
		return unprocessable, "missing_required_field", "Missing `from` field."
	case len(m.To) == 0:
		return unprocessable, "missing_required_field", "Missing `to` field."
	case m.Subject == "":
		return unprocessable, "missing_required_field", "Missing `subject` field."
	case !validAddress(m.From):
		return unprocessable, "validation_error", "Invalid `from` field. The email address needs to follow the `email@example.com` or `Name <email@example.com>` format."
	case m.HTML == "" && m.Text == "":
		return unprocessable, "validation_error", "Missing `html` or `text` field."
	}
	for _, to := range m.To {
		if !validAddress(to) {
			return unprocessable, "validation_error", "Invalid `to` field. The email address needs to follow the `email@example.com` or `Name <email@example.com>` format."
		}
	}
	for _, rt := range m.ReplyTo {
		if !validAddress(rt) {
			return unprocessable, "validation_error", "Invalid `reply_to` field. The email address needs to follow the `email@example.com` or `Name <email@example.com>` format."
		}
	}
	for _, a := range m.Attachments {
		if a.Content == "" && a.Path == "" {
			return unprocessable, "invalid_attachment", "Attachment must have either a `content` or `path`."
		}
		if a.Content != "" {
			if _, err := base64.StdEncoding.DecodeString(a.Content); err != nil {
				return unprocessable, "invalid_attachment", "Attachment `content` must be a base64 string."
			}
		}
	}
	return 0, "", ""
}

// validAddress reports whether s is "email@example.com" or
// "Name <email@example.com>".
func validAddress(s string) bool {
	_, err := mail.ParseAddress(s)
	return err == nil
}

// newUUID returns a random (version 4) UUID, the shape of Resend's ids.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// randomToken returns n random alphanumeric characters.
func randomToken(n int) string {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
