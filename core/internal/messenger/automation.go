package messenger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"

	"github.com/pipecore/pipecore/core/internal/store"
	"github.com/pipecore/pipecore/core/internal/tenant"
)

// RunAutomations applies the tenants' rules to their events until ctx
// ends, checking every interval. Each tenant's events are read once, in
// order, from a cursor kept in the store; a rule's send for an event has
// an id derived from both, so it happens once even if the event is read
// again (a crash between send and cursor write) or replayed to endpoints.
// Rules apply to events recorded after the runner first saw the tenant.
func (s *Service) RunAutomations(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		for _, id := range s.cfg.Tenants.IDs() {
			if ctx.Err() != nil {
				return
			}
			if err := s.automateTenant(ctx, id); err != nil && ctx.Err() == nil {
				s.cfg.Logger.Warn("automations", "tenant", id, "error", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

type cursorDoc struct {
	Seq uint64 `json:"seq"`
}

func (s *Service) automateTenant(ctx context.Context, tenantID string) error {
	rules, err := s.Rules(ctx, tenantID)
	if err != nil {
		return err
	}
	var live []Rule
	for _, r := range rules {
		if r.IsEnabled() {
			live = append(live, r)
		}
	}
	cur, err := s.cfg.Store.GetResource(ctx, kindCursor, tenantID, "automations")
	if errors.Is(err, store.ErrNotFound) {
		// First sight of the tenant: start after its latest event.
		var seq uint64
		if evs, _, err := s.cfg.Store.ListEvents(ctx, tenantID, store.EventQuery{Limit: 1}); err == nil && len(evs) == 1 {
			seq = evs[0].Seq
		}
		err = s.cfg.Store.CreateResource(ctx, store.Resource{Kind: kindCursor, ID: "automations", TenantID: tenantID, Status: "active",
			Doc: mustJSON(cursorDoc{Seq: seq}), CreatedAt: s.now()})
		if err != nil && !errors.Is(err, store.ErrExists) {
			return err
		}
		return nil
	}
	if err != nil {
		return err
	}
	var c cursorDoc
	_ = json.Unmarshal(cur.Doc, &c)
	t, ok := s.cfg.Tenants.Get(tenantID)
	if !ok {
		return nil
	}
	for {
		evs, err := s.cfg.Store.EventsAfter(ctx, tenantID, c.Seq, 100)
		if err != nil || len(evs) == 0 {
			return err
		}
		for _, ev := range evs {
			for _, r := range live {
				if err := s.apply(ctx, t, r, ev); err != nil {
					s.cfg.Logger.Warn("automation rule failed", "tenant", tenantID, "rule", r.ID, "event", ev.ID, "error", err)
				}
			}
			c.Seq = ev.Seq
		}
		if _, err := s.cfg.Store.UpdateResource(ctx, kindCursor, tenantID, "automations", func(r *store.Resource) error {
			r.Doc = mustJSON(c)
			return nil
		}); err != nil {
			return err
		}
		if len(evs) < 100 {
			return nil
		}
	}
}

// apply runs rule r on event ev: when it matches, one message is stored
// (queued, or failed with the reason it could not be sent) with the rule
// and the event recorded on it.
func (s *Service) apply(ctx context.Context, t *tenant.Tenant, r Rule, ev store.Event) error {
	var env struct {
		Type string         `json:"type"`
		Data map[string]any `json:"data"`
	}
	if err := json.Unmarshal(ev.Body, &env); err != nil {
		return err
	}
	root := map[string]any{"type": env.Type, "data": env.Data, "event_id": ev.ID}
	in := SendInput{Channel: r.Channel, Provider: r.Provider, Text: r.Text}
	switch {
	case r.On != "":
		if !typeMatches(r.On, ev.Type) {
			return nil
		}
	case ev.Type == "message.received":
		if dir, _ := env.Data["direction"].(string); dir == "outbound" {
			return nil
		}
		text, _ := env.Data["text"].(string)
		if !matchesKeyword(text, r.Keywords) {
			return nil
		}
		if r.Channel == "" {
			in.Channel, _ = env.Data["channel"].(string)
		}
	default:
		return nil
	}
	if r.To != "" {
		to, err := renderText(r.To, root)
		if err != nil {
			return s.ruleFailed(ctx, t, r, ev, in.Channel, "", fmt.Sprintf("to: %v", err))
		}
		in.To = strings.TrimSpace(to)
	} else {
		in.To, _ = env.Data["from"].(string)
	}
	if r.Template != "" {
		params := map[string]any{}
		for k, src := range r.Params {
			v, err := renderText(src, root)
			if err != nil {
				return s.ruleFailed(ctx, t, r, ev, in.Channel, in.To, fmt.Sprintf("params.%s: %v", k, err))
			}
			params[k] = v
		}
		in.Template = &TemplateRef{Name: r.Template, Language: r.Language, Params: params}
		in.Text = ""
	} else if r.Text != "" {
		text, err := renderText(r.Text, root)
		if err != nil {
			return s.ruleFailed(ctx, t, r, ev, in.Channel, in.To, fmt.Sprintf("text: %v", err))
		}
		in.Text = text
	}
	if ref, _ := env.Data["reference"].(string); ref != "" {
		in.Reference = ref
	}
	p, err := s.Prepare(ctx, t, in)
	if err != nil {
		return s.ruleFailed(ctx, t, r, ev, in.Channel, in.To, err.Error())
	}
	p.doc.Rule, p.doc.TriggerEventID = r.ID, ev.ID
	_, err = s.Enqueue(ctx, t, ruleMessageID(r.ID, ev.ID), p)
	return err
}

// ruleMessageID is the id of the message rule sends for event: the same
// pair never makes two messages.
func ruleMessageID(rule, eventID string) string {
	sum := sha256.Sum256([]byte(rule + "\x00" + eventID))
	return "msg_rule_" + hex.EncodeToString(sum[:12])
}

// ruleFailed records the send the rule could not make, failed with why,
// so the message log shows it.
func (s *Service) ruleFailed(ctx context.Context, t *tenant.Tenant, r Rule, ev store.Event, channel, to, why string) error {
	d := doc{Direction: "outbound", Channel: channel, To: to, Rule: r.ID, TriggerEventID: ev.ID,
		Error: &ErrorInfo{Code: "rule_failed", Message: why}}
	if r.Template != "" {
		d.Template = &TemplateRef{Name: r.Template, Language: r.Language}
	}
	err := s.cfg.Store.CreateResource(ctx, store.Resource{Kind: KindMessage, ID: ruleMessageID(r.ID, ev.ID), TenantID: t.ID,
		Provider: r.Provider, Status: "failed", Doc: mustJSON(d), CreatedAt: s.now()})
	if err != nil && !errors.Is(err, store.ErrExists) {
		return err
	}
	return fmt.Errorf("rule %s: %s", r.ID, why)
}

func typeMatches(pattern, typ string) bool {
	return store.EndpointMatches([]string{pattern}, typ)
}

// fold lowercases s and strips its accents ("Está" → "esta").
func fold(s string) string {
	t := transform.Chain(norm.NFD, runes.Remove(runes.In(unicode.Mn)), norm.NFC)
	out, _, err := transform.String(t, s)
	if err != nil {
		out = s
	}
	return strings.ToLower(out)
}

// matchesKeyword reports whether text holds one of keywords as a whole
// word (or phrase), ignoring case and accents.
func matchesKeyword(text string, keywords []string) bool {
	words := strings.FieldsFunc(fold(text), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	hay := " " + strings.Join(words, " ") + " "
	for _, k := range keywords {
		kw := strings.FieldsFunc(fold(k), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
		if len(kw) > 0 && strings.Contains(hay, " "+strings.Join(kw, " ")+" ") {
			return true
		}
	}
	return false
}
