package messenger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/pipecore/pipecore/core/internal/store"
	"github.com/pipecore/pipecore/sdk/messaging"
	"github.com/pipecore/pipecore/sdk/provider"
)

// statusOfEvent is the outbound status an event type moves a message to
// ("" for none).
func statusOfEvent(typ string) string {
	switch typ {
	case "message.sent":
		return string(messaging.StatusSent)
	case "message.delivered", "email.delivered":
		return string(messaging.StatusDelivered)
	case "message.read", "email.opened":
		return string(messaging.StatusRead)
	case "message.failed", "email.bounced":
		return string(messaging.StatusFailed)
	}
	return ""
}

// Link implements normalize.Linker for message.* and email.* events: a
// status update moves the gateway's message (each status announced once,
// never backwards); an inbound message becomes a message of its own,
// announced once however often the provider repeats it, and opens the
// sender's WhatsApp session window.
func (s *Service) Link(ctx context.Context, tenantID, prov string, ev provider.Event, data map[string]any) ([]store.Linked, string, store.ResourceChange, bool) {
	if !strings.HasPrefix(ev.Type, "message.") && !strings.HasPrefix(ev.Type, "email.") {
		return nil, "", store.ResourceChange{}, false
	}
	if ev.Type == "message.received" {
		return s.linkInbound(ctx, tenantID, prov, ev, data)
	}
	pid, _ := data["provider_message_id"].(string)
	if pid == "" {
		pid = ev.Subject
	}
	r, err := s.cfg.Store.ResourceByProviderID(ctx, KindMessage, prov, pid)
	if err != nil || r.TenantID != tenantID {
		return nil, "", store.ResourceChange{}, false
	}
	d := decodeDoc(&r)
	status := statusOfEvent(ev.Type)
	var why *ErrorInfo
	if status == string(messaging.StatusFailed) {
		why = errorOf(data)
	}
	typ := ev.Type
	apply := func(cur *store.Resource) bool {
		cd := decodeDoc(cur)
		switch {
		case typ == "email.complained":
			if cd.Complained {
				return false
			}
			cd.Complained = true
		case status == "":
			return false
		case status == string(messaging.StatusFailed):
			if cur.Status == string(messaging.StatusFailed) || cur.Status == string(messaging.StatusRead) {
				return false
			}
			cd.Error = why
			cur.Status = status
		case rank(status) <= rank(cur.Status) || cur.Status == string(messaging.StatusFailed):
			return false
		default:
			cur.Status = status
		}
		cur.CheckAt = time.Time{}
		cur.Doc = mustJSON(cd)
		return true
	}
	out := eventData(&r, &d, status)
	if status == "" {
		out["status"] = r.Status
	}
	if why != nil {
		out["error"] = why
	}
	if strings.HasPrefix(typ, "email.") {
		out = map[string]any{"message_id": r.ID, "provider_message_id": r.ProviderID, "to": d.To, "reference": d.Reference}
		if reason, _ := data["reason"].(string); reason != "" && typ == "email.bounced" {
			out["reason"] = reason
		}
	}
	return []store.Linked{{Type: typ, Data: out}}, d.CorrelationID, store.ResourceChange{Kind: KindMessage, ID: r.ID, Apply: apply}, true
}

func errorOf(data map[string]any) *ErrorInfo {
	e, _ := data["error"].(map[string]any)
	code, _ := e["code"].(string)
	msg, _ := e["message"].(string)
	if f, ok := e["code"].(float64); ok && code == "" {
		code = strconv.FormatFloat(f, 'f', -1, 64)
	}
	if msg == "" {
		msg, _ = data["reason"].(string)
	}
	if code == "" && msg == "" {
		return &ErrorInfo{Message: "the provider reported the message failed"}
	}
	return &ErrorInfo{Code: code, Message: msg}
}

// linkInbound stores an inbound message the first time it is seen.
func (s *Service) linkInbound(ctx context.Context, tenantID, prov string, ev provider.Event, data map[string]any) ([]store.Linked, string, store.ResourceChange, bool) {
	pid, _ := data["provider_message_id"].(string)
	if pid == "" {
		pid = ev.Subject
	}
	channel, _ := data["channel"].(string)
	if channel == "" {
		channel = "whatsapp"
	}
	from, _ := data["from"].(string)
	to, _ := data["to"].(string)
	text, _ := data["text"].(string)
	d := doc{Direction: "inbound", Channel: channel, From: from, To: to, Text: text}
	if media, ok := data["media"].([]any); ok {
		for _, m := range media {
			mm, _ := m.(map[string]any)
			str := func(k string) string { v, _ := mm[k].(string); return v }
			d.Media = append(d.Media, Media{Type: str("type"), URL: str("url"), ID: str("id"), MimeType: str("mime_type")})
		}
	}
	// The id derives from the provider's message id: a repeated
	// notification finds the record and is not news.
	sum := sha256.Sum256([]byte(tenantID + "\x00" + prov + "\x00" + pid))
	id := "msg_in_" + hex.EncodeToString(sum[:12])
	now := s.now()
	r := store.Resource{Kind: KindMessage, ID: id, TenantID: tenantID, Provider: prov, ProviderID: pid, Status: "", Doc: mustJSON(d), CreatedAt: now}
	if pid == "" {
		r.ProviderID = ""
	}
	if err := s.cfg.Store.CreateResource(ctx, r); err != nil && !errors.Is(err, store.ErrExists) {
		s.cfg.Logger.Warn("inbound message not stored", "tenant", tenantID, "provider", prov, "error", err)
	}
	if from != "" {
		s.touchSession(ctx, tenantID, channel, from, now)
	}
	out := map[string]any{
		"message_id": id, "provider_message_id": pid, "channel": channel, "from": from, "to": to, "text": text,
	}
	for _, k := range []string{"media", "reply_to"} {
		if v, ok := data[k]; ok {
			out[k] = v
		}
	}
	apply := func(cur *store.Resource) bool {
		if cur.Status != "" {
			return false
		}
		cur.Status = string(messaging.StatusReceived)
		return true
	}
	return []store.Linked{{Type: ev.Type, Data: out}}, "", store.ResourceChange{Kind: KindMessage, ID: id, Apply: apply}, true
}
