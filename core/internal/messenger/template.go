package messenger

import (
	"bytes"
	"fmt"
	htmltemplate "html/template"
	"regexp"
	"slices"
	"strings"
	"text/template"

	"github.com/pipecore/pipecore/core/internal/config"
	"github.com/pipecore/pipecore/core/internal/validation"
	"github.com/pipecore/pipecore/sdk/messaging"
)

// Template is a tenant's message template (see config.Template) and where
// it was defined.
type Template struct {
	config.Template
	Source string `json:"source"` // "config" or "api"
}

var templateNamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`)

// Rendered is a template rendered for one message.
type Rendered struct {
	Language string
	Subject  string
	Text     string
	HTML     string
	WhatsApp *messaging.Template
}

// CheckTemplate reports whether t is well formed: a valid name, at least
// one variant, a known channel, and every Go template parsing.
func CheckTemplate(t config.Template) error {
	if !templateNamePattern.MatchString(t.Name) {
		return validation.New("name", "must be 1-64 lowercase letters, digits, '_', '.' or '-'")
	}
	if t.Channel != "" && !slices.Contains(config.Channels, t.Channel) {
		return validation.New("channel", "must be whatsapp, sms or email")
	}
	if len(t.Variants) == 0 {
		return validation.New("variants", "at least one language variant is required")
	}
	if t.DefaultLanguage != "" {
		if _, ok := t.Variants[t.DefaultLanguage]; !ok {
			return validation.New("default_language", "has no variant")
		}
	}
	for lang, v := range t.Variants {
		f := "variants." + lang
		if v.Text == "" && v.HTML == "" && v.WhatsApp == nil {
			return validation.New(f, "needs text, html or a whatsapp mapping")
		}
		for name, src := range map[string]string{"subject": v.Subject, "text": v.Text} {
			if _, err := template.New(name).Option("missingkey=error").Parse(src); err != nil {
				return validation.New(f+"."+name, "does not parse: "+err.Error())
			}
		}
		if _, err := htmltemplate.New("html").Option("missingkey=error").Parse(v.HTML); err != nil {
			return validation.New(f+".html", "does not parse: "+err.Error())
		}
		if w := v.WhatsApp; w != nil {
			if w.Name == "" {
				return validation.New(f+".whatsapp.name", "is required (the Meta-approved template name)")
			}
			for i, p := range w.Params {
				if _, err := template.New("p").Option("missingkey=error").Parse(p); err != nil {
					return validation.New(fmt.Sprintf("%s.whatsapp.params[%d]", f, i), "does not parse: "+err.Error())
				}
			}
		}
	}
	return nil
}

// variant picks the language variant: the one asked for, else the
// template's default, else "es", else the only one.
func variant(t config.Template, lang string) (string, config.TemplateVariant, bool) {
	for _, l := range []string{lang, strings.ReplaceAll(lang, "-", "_"), t.DefaultLanguage, "es"} {
		if v, ok := t.Variants[l]; ok && l != "" {
			return l, v, true
		}
	}
	if len(t.Variants) == 1 {
		for l, v := range t.Variants {
			return l, v, true
		}
	}
	return "", config.TemplateVariant{}, false
}

// Render renders t for lang with params. Every declared param must be
// present; the error names the first missing one.
func Render(t config.Template, lang string, params map[string]any) (Rendered, error) {
	for _, p := range t.Params {
		if v, ok := params[p]; !ok || v == nil || v == "" {
			return Rendered{}, validation.New("template.params."+p, "is required by template "+t.Name)
		}
	}
	l, v, ok := variant(t, lang)
	if !ok {
		return Rendered{}, validation.New("template.language", fmt.Sprintf("template %s has no variant for %q", t.Name, lang))
	}
	data := map[string]any{}
	for k, val := range params {
		data[k] = val
	}
	out := Rendered{Language: l}
	var err error
	if out.Subject, err = renderText(v.Subject, data); err != nil {
		return Rendered{}, validation.New("template.params", "subject: "+err.Error())
	}
	if out.Text, err = renderText(v.Text, data); err != nil {
		return Rendered{}, validation.New("template.params", "text: "+err.Error())
	}
	if v.HTML != "" {
		tpl, err := htmltemplate.New("html").Option("missingkey=error").Parse(v.HTML)
		if err != nil {
			return Rendered{}, validation.New("template.html", err.Error())
		}
		var b bytes.Buffer
		if err := tpl.Execute(&b, data); err != nil {
			return Rendered{}, validation.New("template.params", "html: "+err.Error())
		}
		out.HTML = b.String()
	}
	if w := v.WhatsApp; w != nil {
		wt := &messaging.Template{Name: w.Name, Language: w.Language}
		if wt.Language == "" {
			wt.Language = l
		}
		for i, p := range w.Params {
			s, err := renderText(p, data)
			if err != nil {
				return Rendered{}, validation.New(fmt.Sprintf("template.whatsapp.params[%d]", i), err.Error())
			}
			wt.Params = append(wt.Params, s)
		}
		out.WhatsApp = wt
	}
	return out, nil
}

// renderText executes a text/template source over data; "" stays "".
func renderText(src string, data any) (string, error) {
	if src == "" {
		return "", nil
	}
	tpl, err := template.New("t").Option("missingkey=error").Parse(src)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if err := tpl.Execute(&b, data); err != nil {
		return "", err
	}
	return b.String(), nil
}
