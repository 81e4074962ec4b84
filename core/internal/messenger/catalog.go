package messenger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"text/template"
	"time"

	"github.com/pipecore/pipecore/core/internal/config"
	"github.com/pipecore/pipecore/core/internal/store"
	"github.com/pipecore/pipecore/core/internal/validation"
)

// ---- templates

// template returns the tenant's template called name: the config file's,
// else one stored through the API.
func (s *Service) template(ctx context.Context, tenantID, name string) (Template, bool, error) {
	for _, t := range s.cfg.Templates[tenantID] {
		if t.Name == name {
			return Template{Template: t, Source: "config"}, true, nil
		}
	}
	r, err := s.cfg.Store.GetResource(ctx, KindTemplate, tenantID, name)
	if errors.Is(err, store.ErrNotFound) {
		return Template{}, false, nil
	}
	if err != nil {
		return Template{}, false, err
	}
	var t config.Template
	if err := json.Unmarshal(r.Doc, &t); err != nil {
		return Template{}, false, fmt.Errorf("messenger: decode template %s: %w", name, err)
	}
	return Template{Template: t, Source: "api"}, true, nil
}

// Templates lists the tenant's templates by name.
func (s *Service) Templates(ctx context.Context, tenantID string) ([]Template, error) {
	out := []Template{}
	seen := map[string]bool{}
	for _, t := range s.cfg.Templates[tenantID] {
		out = append(out, Template{Template: t, Source: "config"})
		seen[t.Name] = true
	}
	rs, err := s.allResources(ctx, KindTemplate, tenantID)
	if err != nil {
		return nil, err
	}
	for _, r := range rs {
		var t config.Template
		if json.Unmarshal(r.Doc, &t) == nil && !seen[t.Name] {
			out = append(out, Template{Template: t, Source: "api"})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// GetTemplate returns the tenant's template or ErrNotFound.
func (s *Service) GetTemplate(ctx context.Context, tenantID, name string) (Template, error) {
	t, ok, err := s.template(ctx, tenantID, name)
	if err != nil {
		return Template{}, err
	}
	if !ok {
		return Template{}, fmt.Errorf("%w: template %s", ErrNotFound, name)
	}
	return t, nil
}

// PutTemplate creates or replaces an API template.
func (s *Service) PutTemplate(ctx context.Context, tenantID string, t config.Template) (Template, error) {
	if err := CheckTemplate(t); err != nil {
		return Template{}, err
	}
	if cur, ok, _ := s.template(ctx, tenantID, t.Name); ok && cur.Source == "config" {
		return Template{}, fmt.Errorf("%w: template %s; change it there", ErrReadOnly, t.Name)
	}
	if err := s.putResource(ctx, KindTemplate, tenantID, t.Name, t); err != nil {
		return Template{}, err
	}
	return Template{Template: t, Source: "api"}, nil
}

// DeleteTemplate removes an API template.
func (s *Service) DeleteTemplate(ctx context.Context, tenantID, name string) error {
	return s.deleteResource(ctx, KindTemplate, tenantID, name, func() bool {
		cur, ok, _ := s.template(ctx, tenantID, name)
		return ok && cur.Source == "config"
	})
}

// ---- automations

// Rule is an automation rule and where it was defined.
type Rule struct {
	config.Automation
	Source string `json:"source"`
}

var ruleIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`)
var eventTypePattern = regexp.MustCompile(`^(\*|[a-z_]+(\.[a-z_]+)*(\.\*)?)$`)

// checkRule reports whether r is well formed.
func checkRule(r config.Automation) error {
	switch {
	case !ruleIDPattern.MatchString(r.ID):
		return validation.New("id", "must be 1-64 lowercase letters, digits, '_', '.' or '-'")
	case (r.On == "") == (len(r.Keywords) == 0):
		return validation.New("on", "a rule has either on (an event type) or keywords")
	case r.On != "" && !eventTypePattern.MatchString(r.On):
		return validation.New("on", "must be an event type such as payment.confirmed, or a prefix such as payment.*")
	case r.On != "" && r.To == "":
		return validation.New("to", "is required for an event rule, e.g. {{ .data.customer.phone }}")
	case !slices.Contains(config.Channels, r.Channel):
		return validation.New("channel", "must be whatsapp, sms or email")
	case (r.Template == "") == (r.Text == ""):
		return validation.New("template", "a rule sends either a template or text")
	}
	for i, k := range r.Keywords {
		if strings.TrimSpace(k) == "" {
			return validation.New(fmt.Sprintf("keywords[%d]", i), "is empty")
		}
	}
	srcs := map[string]string{"to": r.To, "text": r.Text}
	for k, v := range r.Params {
		srcs["params."+k] = v
	}
	for f, src := range srcs {
		if _, err := template.New(f).Parse(src); err != nil {
			return validation.New(f, "does not parse: "+err.Error())
		}
	}
	return nil
}

// Rules lists the tenant's automation rules by id.
func (s *Service) Rules(ctx context.Context, tenantID string) ([]Rule, error) {
	out := []Rule{}
	seen := map[string]bool{}
	for _, r := range s.cfg.Automations[tenantID] {
		out = append(out, Rule{Automation: r, Source: "config"})
		seen[r.ID] = true
	}
	rs, err := s.allResources(ctx, KindAutomation, tenantID)
	if err != nil {
		return nil, err
	}
	for _, res := range rs {
		var a config.Automation
		if json.Unmarshal(res.Doc, &a) == nil && !seen[a.ID] {
			out = append(out, Rule{Automation: a, Source: "api"})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// GetRule returns one rule or ErrNotFound.
func (s *Service) GetRule(ctx context.Context, tenantID, id string) (Rule, error) {
	rs, err := s.Rules(ctx, tenantID)
	if err != nil {
		return Rule{}, err
	}
	for _, r := range rs {
		if r.ID == id {
			return r, nil
		}
	}
	return Rule{}, fmt.Errorf("%w: automation %s", ErrNotFound, id)
}

// PutRule creates or replaces an API rule.
func (s *Service) PutRule(ctx context.Context, tenantID string, a config.Automation) (Rule, error) {
	if err := checkRule(a); err != nil {
		return Rule{}, err
	}
	if cur, err := s.GetRule(ctx, tenantID, a.ID); err == nil && cur.Source == "config" {
		return Rule{}, fmt.Errorf("%w: automation %s; change it there", ErrReadOnly, a.ID)
	}
	if a.Template != "" {
		if _, ok, err := s.template(ctx, tenantID, a.Template); err != nil || !ok {
			return Rule{}, validation.New("template", fmt.Sprintf("no template %q for this tenant", a.Template))
		}
	}
	if err := s.putResource(ctx, KindAutomation, tenantID, a.ID, a); err != nil {
		return Rule{}, err
	}
	return Rule{Automation: a, Source: "api"}, nil
}

// DeleteRule removes an API rule.
func (s *Service) DeleteRule(ctx context.Context, tenantID, id string) error {
	return s.deleteResource(ctx, KindAutomation, tenantID, id, func() bool {
		cur, err := s.GetRule(ctx, tenantID, id)
		return err == nil && cur.Source == "config"
	})
}

// ---- shared resource helpers

func (s *Service) putResource(ctx context.Context, kind, tenantID, id string, v any) error {
	doc := mustJSON(v)
	_, err := s.cfg.Store.UpdateResource(ctx, kind, tenantID, id, func(r *store.Resource) error {
		r.Doc, r.Status = doc, "active"
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		err = s.cfg.Store.CreateResource(ctx, store.Resource{Kind: kind, ID: id, TenantID: tenantID, Status: "active", Doc: doc, CreatedAt: s.now()})
		if errors.Is(err, store.ErrExists) { // a concurrent create won
			return s.putResource(ctx, kind, tenantID, id, v)
		}
	}
	return err
}

func (s *Service) deleteResource(ctx context.Context, kind, tenantID, id string, fromConfig func() bool) error {
	if fromConfig() {
		return fmt.Errorf("%w: %s %s; remove it there", ErrReadOnly, kind, id)
	}
	_, err := s.cfg.Store.UpdateResource(ctx, kind, tenantID, id, func(r *store.Resource) error {
		if r.Status == "deleted" {
			return store.ErrNotFound
		}
		r.Status, r.Doc = "deleted", nil
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: %s %s", ErrNotFound, kind, id)
	}
	return err
}

// allResources reads every live record of a kind of the tenant.
func (s *Service) allResources(ctx context.Context, kind, tenantID string) ([]store.Resource, error) {
	var out []store.Resource
	cursor := ""
	for {
		page, next, err := s.cfg.Store.ListResources(ctx, kind, tenantID, store.ListQuery{Limit: store.MaxListLimit, Cursor: cursor})
		if err != nil {
			return nil, err
		}
		for _, r := range page {
			if r.Status != "deleted" {
				out = append(out, r)
			}
		}
		if next == "" {
			return out, nil
		}
		cursor = next
	}
}

// ---- sessions

func contactID(channel, address string) string { return channel + ":" + address }

// touchSession records an inbound message from address now.
func (s *Service) touchSession(ctx context.Context, tenantID, channel, address string, at time.Time) {
	address = strings.TrimPrefix(address, "whatsapp:")
	doc := mustJSON(map[string]any{"last_inbound_at": at})
	id := contactID(channel, address)
	_, err := s.cfg.Store.UpdateResource(ctx, kindContact, tenantID, id, func(r *store.Resource) error { r.Doc = doc; return nil })
	if errors.Is(err, store.ErrNotFound) {
		err = s.cfg.Store.CreateResource(ctx, store.Resource{Kind: kindContact, ID: id, TenantID: tenantID, Status: "active", Doc: doc, CreatedAt: at})
		if errors.Is(err, store.ErrExists) {
			_, err = s.cfg.Store.UpdateResource(ctx, kindContact, tenantID, id, func(r *store.Resource) error { r.Doc = doc; return nil })
		}
	}
	if err != nil {
		s.cfg.Logger.Warn("session window not recorded", "tenant", tenantID, "error", err)
	}
}

// sessionOpen reports whether address wrote on channel within SessionWindow.
func (s *Service) sessionOpen(ctx context.Context, tenantID, channel, address string) (bool, error) {
	r, err := s.cfg.Store.GetResource(ctx, kindContact, tenantID, contactID(channel, address))
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var d struct {
		LastInboundAt time.Time `json:"last_inbound_at"`
	}
	_ = json.Unmarshal(r.Doc, &d)
	return s.now().Sub(d.LastInboundAt) < SessionWindow, nil
}
