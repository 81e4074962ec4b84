// Package twiliofake is an in-process fake of Twilio's Programmable
// Messaging API for tests (SMS and WhatsApp): the Messages create endpoint
// and the webhooks Twilio posts back, following the documented wire format
// (PipeCore's providers.md §7).
//
// API: POST /2010-04-01/Accounts/{AccountSid}/Messages.json with an
// application/x-www-form-urlencoded body.
//
//   - Auth: HTTP basic AccountSID:AuthToken; anything else is 401 with
//     {"code":20003,"message":"Authenticate",...}. A path naming another
//     account is 404 (code 20404).
//   - Form: To (required, 21604), From or MessagingServiceSid (21603),
//     Body (21602). To and From are E.164 ("+569…") for SMS or
//     "whatsapp:+569…" for WhatsApp; a malformed To is 21211 and To and
//     From on different channels is 21910. StatusCallback is accepted.
//     Every failure is 400.
//   - Success: 201 with a Message resource: sid "SM" + 32 hex digits,
//     status "queued", to, from, body, account_sid, date_created, ...
//   - FailNext(status, n) makes the next n API requests fail with status
//     and a Twilio error body (401 → 20003, 429 → 20429, 5xx → 20500,
//     other → 21211), before auth is checked.
//
// Every error body is {"code","message","more_info","status"}.
//
// Webhooks: SetWebhook names the URL that receives both status callbacks
// and incoming messages (the StatusCallback of a send is recorded but not
// used). Status and Inbound POST a form synchronously, signed as Twilio
// signs: "X-Twilio-Signature: base64(HMAC-SHA1(AuthToken, url + every
// parameter name and value, sorted by name))", where url is exactly the
// URL given to SetWebhook.
//
// A Server is safe for concurrent use. Close stops it; every listener is
// bound to 127.0.0.1.
package twiliofake

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // Twilio's signature is HMAC-SHA1.
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pipecore/pipecore/sdk/providertest/fakehttp"
)

// The credentials the fake accepts.
const (
	AccountSID = "AC00000000000000000000000000000001"
	AuthToken  = "twilio-test-token"
)

const (
	apiVersion   = "2010-04-01"
	whatsAppPfx  = "whatsapp:"
	messagesPath = "/" + apiVersion + "/Accounts/%s/Messages.json"
)

// Request is one API request the fake received.
type Request = fakehttp.Request

// Server is a running fake. Create it with Start.
type Server struct {
	api *fakehttp.Server

	mu       sync.Mutex
	sent     []url.Values
	messages map[string]url.Values // sid → send form
	hookURL  string
}

// Start starts a fake on 127.0.0.1.
func Start() *Server {
	s := &Server{messages: map[string]url.Values{}, api: fakehttp.New(fakehttp.Options{Name: "twiliofake"})}
	s.api.Start(http.HandlerFunc(s.serve))
	return s
}

// URL is the base URL to use as the plugin's base_url.
func (s *Server) URL() string { return s.api.URL() }

// Close stops the fake and waits for its requests to end.
func (s *Server) Close() { s.api.Close() }

// FailNext makes the next n API requests answer status with a Twilio
// error body. n <= 0 clears it.
func (s *Server) FailNext(status, n int) { s.api.FailNext(status, n) }

// SetWebhook sets the URL status callbacks and incoming messages are
// POSTed to. The signature covers this exact string.
func (s *Server) SetWebhook(url string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hookURL = url
}

// Requests returns every API request received, in order.
func (s *Server) Requests() []Request { return s.api.Requests() }

// Sent returns the forms of the messages the fake accepted, in order.
func (s *Server) Sent() []url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]url.Values, len(s.sent))
	for i, f := range s.sent {
		out[i] = cloneValues(f)
	}
	return out
}

var (
	e164     = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
	pathSIDs = regexp.MustCompile(`^/2010-04-01/Accounts/([^/]+)/Messages\.json$`)
)

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	s.api.Record(r, body)
	if status, fail := s.api.TakeFailure(); fail {
		failWith(w, status)
		return
	}

	user, pass, ok := r.BasicAuth()
	if !ok || user != AccountSID || pass != AuthToken {
		twilioError(w, http.StatusUnauthorized, 20003, "Authenticate")
		return
	}
	m := pathSIDs.FindStringSubmatch(r.URL.Path)
	if m == nil || m[1] != AccountSID {
		twilioError(w, http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found")
		return
	}
	if r.Method != http.MethodPost {
		twilioError(w, http.StatusMethodNotAllowed, 20004, "Method not allowed")
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		twilioError(w, http.StatusBadRequest, 21602, "Message body is required.")
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		twilioError(w, http.StatusBadRequest, 21602, "Message body is required.")
		return
	}
	if code, msg := validate(form); code != 0 {
		twilioError(w, http.StatusBadRequest, code, msg)
		return
	}
	sid := "SM" + randomHex(32)
	s.mu.Lock()
	s.sent = append(s.sent, cloneValues(form))
	s.messages[sid] = cloneValues(form)
	s.mu.Unlock()
	now := time.Now().UTC().Format(time.RFC1123Z)
	var service any
	if v := form.Get("MessagingServiceSid"); v != "" {
		service = v
	}
	// Without From, Twilio picks a sender from the Messaging Service's
	// pool; the fake answers an empty from.
	from := form.Get("From")
	writeJSON(w, http.StatusCreated, map[string]any{
		"sid": sid, "account_sid": AccountSID, "api_version": apiVersion,
		"to": form.Get("To"), "from": from, "body": form.Get("Body"),
		"status": "queued", "direction": "outbound-api", "messaging_service_sid": service,
		"num_segments": "1", "num_media": "0", "price": nil, "price_unit": "USD",
		"error_code": nil, "error_message": nil,
		"date_created": now, "date_updated": now, "date_sent": nil,
		"uri":              strings.TrimSuffix(fmt.Sprintf(messagesPath, AccountSID), ".json") + "/" + sid + ".json",
		"subresource_uris": map[string]any{"media": strings.TrimSuffix(fmt.Sprintf(messagesPath, AccountSID), ".json") + "/" + sid + "/Media.json"},
	})
}

// validate returns Twilio's code and message for what is wrong with a send
// form, or 0.
func validate(f url.Values) (int, string) {
	to, from := f.Get("To"), f.Get("From")
	switch {
	case to == "":
		return 21604, "A 'To' phone number is required."
	case from == "" && f.Get("MessagingServiceSid") == "":
		return 21603, "A 'From' phone number is required."
	case f.Get("Body") == "" && f.Get("MediaUrl") == "" && f.Get("ContentSid") == "":
		return 21602, "Message body is required."
	}
	if !e164.MatchString(strings.TrimPrefix(to, whatsAppPfx)) {
		return 21211, "Invalid 'To' Phone Number: " + to
	}
	if from != "" {
		if !e164.MatchString(strings.TrimPrefix(from, whatsAppPfx)) {
			return 21212, "Invalid 'From' Phone Number: " + from
		}
		if strings.HasPrefix(to, whatsAppPfx) != strings.HasPrefix(from, whatsAppPfx) {
			return 21910, "Invalid From and To pair. From and To should be of the same channel"
		}
	}
	return 0, ""
}

func failWith(w http.ResponseWriter, status int) {
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		twilioError(w, status, 20003, "Authenticate")
	case status == http.StatusTooManyRequests:
		twilioError(w, status, 20429, "Too Many Requests")
	case status >= 500:
		twilioError(w, status, 20500, "An internal server error has occurred")
	default:
		twilioError(w, status, 21211, "Invalid 'To' Phone Number")
	}
}

func twilioError(w http.ResponseWriter, status, code int, message string) {
	writeJSON(w, status, map[string]any{
		"code": code, "message": message,
		"more_info": fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code), "status": status,
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Status posts a status callback for the message sid: MessageSid, SmsSid,
// MessageStatus, SmsStatus, AccountSid, ApiVersion, and To and From as
// sent when the fake sent sid. "failed" and "undelivered" carry ErrorCode
// 30008 (unknown error). It returns after the webhook was answered; a
// non-2xx answer is an error.
func (s *Server) Status(sid, status string) error {
	switch status {
	case "queued", "sending", "sent", "delivered", "read", "failed", "undelivered", "accepted", "scheduled", "canceled":
	default:
		return fmt.Errorf("twiliofake: status %q is not a Twilio message status", status)
	}
	s.mu.Lock()
	sent := s.messages[sid]
	s.mu.Unlock()
	f := url.Values{
		"MessageSid": {sid}, "SmsSid": {sid}, "MessageStatus": {status}, "SmsStatus": {status},
		"AccountSid": {AccountSID}, "ApiVersion": {apiVersion},
	}
	if sent != nil {
		f.Set("To", sent.Get("To"))
		if v := sent.Get("From"); v != "" {
			f.Set("From", v)
		}
		if v := sent.Get("MessagingServiceSid"); v != "" {
			f.Set("MessagingServiceSid", v)
		}
		if strings.HasPrefix(sent.Get("To"), whatsAppPfx) {
			f.Set("ChannelToAddress", strings.TrimPrefix(sent.Get("To"), whatsAppPfx))
		}
	}
	if status == "failed" || status == "undelivered" {
		f.Set("ErrorCode", "30008")
	}
	return s.post(f)
}

// Inbound posts an incoming-message webhook from from to to (both as
// Twilio writes them: "whatsapp:+569…" for WhatsApp, "+569…" for SMS)
// with body as Body. It returns the new MessageSid after the webhook was
// answered; a non-2xx answer is an error.
func (s *Server) Inbound(from, to, body string) (string, error) {
	sid := "SM" + randomHex(32)
	f := url.Values{
		"MessageSid": {sid}, "SmsMessageSid": {sid}, "SmsSid": {sid},
		"AccountSid": {AccountSID}, "ApiVersion": {apiVersion},
		"From": {from}, "To": {to}, "Body": {body},
		"NumMedia": {"0"}, "NumSegments": {"1"}, "SmsStatus": {"received"},
	}
	if strings.HasPrefix(from, whatsAppPfx) {
		f.Set("ProfileName", "Test User")
		f.Set("WaId", strings.TrimPrefix(strings.TrimPrefix(from, whatsAppPfx), "+"))
		f.Set("MessageType", "text")
	} else {
		f.Set("FromCountry", "CL")
		f.Set("ToCountry", "CL")
	}
	return sid, s.post(f)
}

// post signs form over the webhook URL and POSTs it.
func (s *Server) post(form url.Values) error {
	s.mu.Lock()
	hookURL := s.hookURL
	s.mu.Unlock()
	if hookURL == "" {
		return errors.New("twiliofake: no webhook URL (call SetWebhook)")
	}
	return s.api.PostWebhook(hookURL, http.Header{
		"Content-Type":               {"application/x-www-form-urlencoded"},
		"User-Agent":                 {"TwilioProxy/1.1"},
		"X-Twilio-Signature":         {sign(AuthToken, hookURL, form)},
		"I-Twilio-Idempotency-Token": {randomHex(32)},
	}, []byte(form.Encode()))
}

// sign returns Twilio's X-Twilio-Signature for a form POSTed to fullURL:
// base64 of HMAC-SHA1 keyed by authToken over fullURL followed by every
// parameter's name and value, sorted by name (the values of a repeated
// name sorted too).
func sign(authToken, fullURL string, form url.Values) string {
	mac := hmac.New(sha1.New, []byte(authToken))
	_, _ = io.WriteString(mac, fullURL)
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		vs := slices.Clone(form[k])
		slices.Sort(vs)
		for _, v := range vs {
			_, _ = io.WriteString(mac, k)
			_, _ = io.WriteString(mac, v)
		}
	}
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}

func randomHex(n int) string {
	b := make([]byte, (n+1)/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n]
}
