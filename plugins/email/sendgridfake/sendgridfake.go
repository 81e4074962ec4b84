// Package sendgridfake is an in-process fake of Twilio SendGrid for tests:
// the v3 Mail Send API and the Signed Event Webhook, following the wire
// format in providers.md §8.
//
// # Mail Send
//
// The fake serves POST /v3/mail/send on 127.0.0.1 (an httptest server).
// Like SendGrid it wants "Authorization: Bearer <key>" (APIKey is the only
// key it accepts) and a JSON body; it answers
//
//   - 202 Accepted, empty body, header X-Message-Id (22 characters of
//     base64url, no dots) for a valid message;
//   - 401 for a missing or wrong key, 415 for a body that is not
//     application/json, 400 for malformed JSON or a message missing a
//     required field (personalizations[].to[].email, from.email, subject,
//     content[] with type and value, attachments[] with base64 content
//     and filename), 404 and 405 for other paths and methods;
//
// every error with SendGrid's body {"errors":[{"message","field","help"}]}.
// FailNext makes the next requests fail with a chosen status (a 429 carries
// X-RateLimit-Limit, -Remaining and -Reset like SendGrid's).
//
// SendGrid has no idempotency header, so neither has the fake: every
// accepted request is a new message.
//
// # Event Webhook
//
// After SetWebhook, Event posts a one-event JSON array to the URL, signed
// like SendGrid's Signed Event Webhook: X-Twilio-Email-Event-Webhook-Timestamp
// is the unix time in seconds and X-Twilio-Email-Event-Webhook-Signature the
// base64 of an ASN.1 DER ECDSA P-256 signature over SHA-256(timestamp ||
// body). PublicKey returns the verification key in the form SendGrid's
// settings page shows it (base64 of a DER SubjectPublicKeyInfo). The event
// carries email, timestamp, event, sg_event_id, sg_message_id
// ("<X-Message-Id>.<filter suffix>") and smtp-id, the custom_args of the
// message as top-level keys, typical fields of the event (reason, status
// and type for bounce; reason for dropped; response for delivered;
// useragent and ip for open), then extra.
//
// A Server is safe for concurrent use. Close stops it.
package sendgridfake

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/mail"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pipecore/pipecore/sdk/providertest/fakehttp"
)

// APIKey is the only API key the fake accepts.
const APIKey = "SG.test-key"

// The Mail Send path and the webhook signature headers.
const (
	sendPath        = "/v3/mail/send"
	signatureHeader = "X-Twilio-Email-Event-Webhook-Signature"
	timestampHeader = "X-Twilio-Email-Event-Webhook-Timestamp"
)

// maxBody bounds a request body the fake reads (SendGrid's limit is 30 MB).
const maxBody = 32 << 20

// Request is one HTTP request the fake received.
type Request = fakehttp.Request

// Server is a running fake. Create it with Start.
type Server struct {
	api *fakehttp.Server
	key *ecdsa.PrivateKey

	mu       sync.Mutex
	sent     []map[string]any
	messages map[string]message // X-Message-Id -> what events need
	webhook  string
}

// message is what the fake keeps of an accepted send for its events.
type message struct {
	email      string
	customArgs map[string]string
}

// Start starts a fake on 127.0.0.1 with a fresh ECDSA P-256 signing key.
// It panics only if the system's random source fails.
func Start() *Server {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic("sendgridfake: generate key: " + err.Error())
	}
	s := &Server{
		api:      fakehttp.New(fakehttp.Options{Name: "sendgridfake"}),
		key:      key,
		sent:     []map[string]any{},
		messages: make(map[string]message),
	}
	s.api.Start(http.HandlerFunc(s.serve))
	return s
}

// URL is the fake's base URL (scheme://127.0.0.1:port), the value for a
// tenant's base_url setting.
func (s *Server) URL() string { return s.api.URL() }

// Close stops the server and drops idle webhook connections.
func (s *Server) Close() { s.api.Close() }

// PublicKey returns the base64 (standard alphabet) DER SubjectPublicKeyInfo
// of the key that verifies the fake's webhook signatures: the value
// SendGrid shows under Mail Settings > Signed Event Webhook.
func (s *Server) PublicKey() string {
	der, err := x509.MarshalPKIXPublicKey(&s.key.PublicKey)
	if err != nil { // cannot happen for a P-256 key
		panic("sendgridfake: marshal public key: " + err.Error())
	}
	return base64.StdEncoding.EncodeToString(der)
}

// FailNext makes the next n requests, whatever their path or key, fail with
// status and SendGrid's error body ({"errors":[...]}; a 400 carries a
// from.email validation error, a 429 the X-RateLimit-* headers with a
// reset one second ahead). n <= 0 cancels a pending failure.
func (s *Server) FailNext(status, n int) { s.api.FailNext(status, n) }

// SetWebhook sets the URL Event posts to; "" turns the webhook off.
func (s *Server) SetWebhook(url string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.webhook = url
}

// Requests returns a copy of every request received, in order.
func (s *Server) Requests() []Request { return s.api.Requests() }

// Sent returns the decoded JSON bodies of the accepted (202) sends, in
// order. The maps are fresh copies decoded from the recorded bytes.
func (s *Server) Sent() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fakehttp.CloneJSON(s.sent)
}

// Event posts one event about the message whose X-Message-Id is messageID
// (as a one-element JSON array, signed) to the webhook URL and waits for
// the answer; a non-2xx answer is an error. event is SendGrid's event name
// ("delivered", "bounce", "dropped", "open", "spamreport", "processed",
// ...). extra is merged last into the event's keys (a nil value removes a
// key). A messageID the fake did not issue is allowed: the event then has
// no custom args and the recipient "recipient@example.com" unless extra
// sets "email".
func (s *Server) Event(messageID, event string, extra map[string]any) error {
	s.mu.Lock()
	url := s.webhook
	msg, known := s.messages[messageID]
	s.mu.Unlock()
	if url == "" {
		return errors.New("sendgridfake: no webhook URL set (call SetWebhook)")
	}
	if !known {
		msg.email = "recipient@example.com"
	}
	now := time.Now()
	ev := map[string]any{
		"email":         msg.email,
		"timestamp":     now.Unix(),
		"event":         event,
		"sg_event_id":   randomID(24),
		"sg_message_id": messageID + ".filterdrecv-5645d9c87f-x7l2k-1-" + strings.ToUpper(strconv.FormatInt(now.Unix(), 16)) + "-4D.0",
		"smtp-id":       "<" + messageID + "@geopod-ismtpd-3>",
	}
	for k, v := range msg.customArgs {
		ev[k] = v
	}
	switch event {
	case "delivered":
		ev["response"] = "250 2.0.0 OK  1700000000 d75a77b69052e-4a1b2c3d.42 - gsmtp"
		ev["ip"] = "149.72.123.24"
		ev["tls"] = 1
	case "bounce":
		ev["reason"] = "550 5.1.1 The email account that you tried to reach does not exist."
		ev["status"] = "5.1.1"
		ev["type"] = "bounce"
		ev["bounce_classification"] = "Invalid Address"
	case "dropped":
		ev["reason"] = "Bounced Address"
		ev["status"] = "5.0.0"
	case "deferred":
		ev["response"] = "400 try again later"
		ev["attempt"] = "1"
	case "open":
		ev["useragent"] = "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"
		ev["ip"] = "190.45.12.7"
		ev["sg_machine_open"] = false
	case "click":
		ev["url"] = "https://example.com/"
		ev["useragent"] = "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"
		ev["ip"] = "190.45.12.7"
	}
	for k, v := range extra {
		if v == nil {
			delete(ev, k)
			continue
		}
		ev[k] = v
	}
	body, err := json.Marshal([]any{ev})
	if err != nil {
		return fmt.Errorf("sendgridfake: encode event: %w", err)
	}
	return s.post(url, body)
}

// post signs body like SendGrid and posts it to url.
func (s *Server) post(url string, body []byte) error {
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	digest := sha256.Sum256(append([]byte(ts), body...))
	sig, err := ecdsa.SignASN1(rand.Reader, s.key, digest[:])
	if err != nil {
		return fmt.Errorf("sendgridfake: sign: %w", err)
	}
	return s.api.PostWebhook(url, http.Header{
		"Content-Type":  {"application/json"},
		"User-Agent":    {"SendGrid Event API"},
		signatureHeader: {base64.StdEncoding.EncodeToString(sig)},
		timestampHeader: {ts},
	}, body)
}

// apiError is one entry of SendGrid's error body. Field and Help are null
// when SendGrid has nothing to say.
type apiError struct {
	Message string  `json:"message"`
	Field   *string `json:"field"`
	Help    *string `json:"help"`
}

func fieldError(field, msg string) apiError {
	help := "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#message." + strings.SplitN(field, ".", 2)[0]
	return apiError{Message: msg, Field: &field, Help: &help}
}

func writeErrors(w http.ResponseWriter, status int, errs ...apiError) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Errors []apiError `json:"errors"`
	}{errs})
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	s.api.Record(r, body)
	status, failing := s.api.TakeFailure()

	switch {
	case failing:
		s.fail(w, status)
		return
	case err != nil:
		writeErrors(w, http.StatusBadRequest, apiError{Message: "could not read the request body"})
		return
	case len(body) > maxBody:
		writeErrors(w, http.StatusRequestEntityTooLarge, apiError{Message: "The JSON payload you have included in your request is too large."})
		return
	case r.URL.Path != sendPath:
		writeErrors(w, http.StatusNotFound, apiError{Message: "resource not found"})
		return
	case r.Method != http.MethodPost:
		writeErrors(w, http.StatusMethodNotAllowed, apiError{Message: "method not allowed"})
		return
	}
	switch auth := r.Header.Get("Authorization"); {
	case auth == "":
		writeErrors(w, http.StatusUnauthorized, apiError{Message: "authorization required"})
		return
	case auth != "Bearer "+APIKey:
		writeErrors(w, http.StatusUnauthorized, apiError{Message: "The provided authorization grant is invalid, expired, or revoked"})
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		writeErrors(w, http.StatusUnsupportedMediaType, apiError{Message: "Content-Type should be application/json."})
		return
	}
	var m mailSend
	if err := json.Unmarshal(body, &m); err != nil {
		writeErrors(w, http.StatusBadRequest, apiError{Message: "Bad Request"})
		return
	}
	if errs := m.validate(); len(errs) > 0 {
		writeErrors(w, http.StatusBadRequest, errs...)
		return
	}
	var decoded map[string]any
	_ = json.Unmarshal(body, &decoded)

	id := randomID(16)
	args := maps.Clone(m.CustomArgs)
	if args == nil {
		args = map[string]string{}
	}
	maps.Copy(args, m.Personalizations[0].CustomArgs)
	s.mu.Lock()
	s.sent = append(s.sent, decoded)
	s.messages[id] = message{email: m.Personalizations[0].To[0].Email, customArgs: args}
	s.mu.Unlock()

	w.Header().Set("X-Message-Id", id)
	w.WriteHeader(http.StatusAccepted)
}

// fail answers a FailNext failure with SendGrid's error body.
func (s *Server) fail(w http.ResponseWriter, status int) {
	msg := http.StatusText(status)
	switch {
	case status == http.StatusUnauthorized:
		msg = "The provided authorization grant is invalid, expired, or revoked"
	case status == http.StatusForbidden:
		msg = "access forbidden"
	case status == http.StatusTooManyRequests:
		w.Header().Set("X-RateLimit-Limit", "600")
		w.Header().Set("X-RateLimit-Remaining", "0")
		w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(time.Now().Add(time.Second).Unix(), 10))
		msg = "too many requests"
	case status == http.StatusBadRequest:
		writeErrors(w, status, fieldError("from.email", "The from email does not contain a valid address."))
		return
	case status >= 500:
		msg = "internal server error"
	}
	if msg == "" {
		msg = "simulated failure"
	}
	writeErrors(w, status, apiError{Message: msg})
}

// mailSend is the part of a v3 Mail Send body the fake validates.
type mailSend struct {
	Personalizations []struct {
		To []struct {
			Email string `json:"email"`
			Name  string `json:"name"`
		} `json:"to"`
		Subject    string            `json:"subject"`
		CustomArgs map[string]string `json:"custom_args"`
	} `json:"personalizations"`
	From *struct {
		Email string `json:"email"`
		Name  string `json:"name"`
	} `json:"from"`
	ReplyTo *struct {
		Email string `json:"email"`
	} `json:"reply_to"`
	Subject string `json:"subject"`
	Content []struct {
		Type  string `json:"type"`
		Value string `json:"value"`
	} `json:"content"`
	Attachments []struct {
		Content  string `json:"content"`
		Filename string `json:"filename"`
		Type     string `json:"type"`
	} `json:"attachments"`
	TemplateID string            `json:"template_id"`
	CustomArgs map[string]string `json:"custom_args"`
}

// validate checks what SendGrid requires of a message and returns its
// complaints (none for a valid message).
func (m *mailSend) validate() []apiError {
	var errs []apiError
	if len(m.Personalizations) == 0 {
		errs = append(errs, fieldError("personalizations", "The personalizations field is required and must have at least one personalization."))
	}
	everySubject := len(m.Personalizations) > 0
	for i, p := range m.Personalizations {
		if len(p.To) == 0 {
			errs = append(errs, fieldError(fmt.Sprintf("personalizations.%d.to", i), "The to array is required for all personalization objects, and must have at least one email object with a valid email address."))
		}
		for j, to := range p.To {
			if !validEmail(to.Email) {
				errs = append(errs, fieldError(fmt.Sprintf("personalizations.%d.to.%d.email", i, j), "Does not contain a valid address."))
			}
		}
		if p.Subject == "" {
			everySubject = false
		}
	}
	switch {
	case m.From == nil || m.From.Email == "":
		errs = append(errs, fieldError("from", "The from object must be provided for every email send. It is an object that requires the email parameter, but may also contain a name parameter."))
	case !validEmail(m.From.Email):
		errs = append(errs, fieldError("from.email", "The from email does not contain a valid address."))
	}
	if m.ReplyTo != nil && !validEmail(m.ReplyTo.Email) {
		errs = append(errs, fieldError("reply_to.email", "The reply_to email does not contain a valid address."))
	}
	if m.TemplateID == "" {
		if m.Subject == "" && !everySubject {
			errs = append(errs, fieldError("subject", "The subject is required. You can get around this requirement if you use a template with a subject defined or if every personalization has a subject defined."))
		}
		if len(m.Content) == 0 {
			errs = append(errs, fieldError("content", "Unless a valid template_id is provided, the content parameter is required. There must be at least one defined content block. We typically suggest both text/plain and text/html blocks are included, but only one block is required."))
		}
	}
	for i, c := range m.Content {
		if c.Type == "" {
			errs = append(errs, fieldError(fmt.Sprintf("content.%d.type", i), "The content type cannot contain ';', or CRLF characters, and must be at least 1 character long."))
		}
		if c.Value == "" {
			errs = append(errs, fieldError(fmt.Sprintf("content.%d.value", i), "The content value must be a string at least one character in length."))
		}
		if i > 0 && c.Type == "text/plain" {
			errs = append(errs, fieldError("content", "If present, text/plain content must be first, followed by text/html, followed by any other content."))
		}
	}
	for i, a := range m.Attachments {
		if a.Filename == "" {
			errs = append(errs, fieldError(fmt.Sprintf("attachments.%d.filename", i), "The attachment filename parameter is required."))
		}
		if _, err := base64.StdEncoding.DecodeString(a.Content); err != nil || a.Content == "" {
			errs = append(errs, fieldError(fmt.Sprintf("attachments.%d.content", i), "The attachment content must be base64 encoded."))
		}
	}
	return errs
}

// validEmail reports whether s is a bare addr-spec.
func validEmail(s string) bool {
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s
}

// randomID returns n random bytes in unpadded base64url.
func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
