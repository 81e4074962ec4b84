package payment

import (
	"context"
	"fmt"
	"html/template"
	"io"
	"net/url"
	"sort"
	"strings"

	"github.com/pipecore/pipecore/core/internal/store"
	"github.com/pipecore/pipecore/core/internal/tenant"
)

// CheckoutURL is the redirect URL the tenant sees for p: the provider's,
// or, when the provider needs a form POST (Transbank's token_ws), the
// gateway's checkout page that submits it.
func CheckoutURL(publicURL string, p store.Payment) string {
	if len(p.RedirectForm) == 0 || publicURL == "" {
		return p.RedirectURL
	}
	return fmt.Sprintf("%s/checkout/%s/%s", strings.TrimRight(publicURL, "/"), url.PathEscape(p.TenantID), url.PathEscape(p.ID))
}

// checkoutPage posts the provider's form as soon as it loads; without
// JavaScript the customer presses the button.
var checkoutPage = template.Must(template.New("checkout").Parse(`<!doctype html>
<html lang="es"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="referrer" content="no-referrer"><title>Redirigiendo al pago…</title></head>
<body onload="document.forms[0].submit()">
<form method="post" action="{{.URL}}">
{{range .Fields}}<input type="hidden" name="{{.Name}}" value="{{.Value}}">
{{end}}<noscript><p>Continúe al pago / Continue to payment:</p></noscript>
<button type="submit">Continuar al pago</button>
</form></body></html>
`))

// WriteCheckout renders the checkout page of the tenant's payment id to w.
// It fails with ErrNotFound for a payment that does not exist, belongs to
// another tenant, needs no form, or is no longer awaiting the customer.
func (s *Service) WriteCheckout(ctx context.Context, t *tenant.Tenant, id string, w io.Writer) error {
	p, err := s.load(ctx, t, id)
	if err != nil {
		return err
	}
	if len(p.RedirectForm) == 0 || p.RedirectURL == "" || p.Status != "requires_action" {
		return fmt.Errorf("%w: %s has no checkout form", ErrNotFound, id)
	}
	u, err := url.Parse(p.RedirectURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("payment: %s: provider redirect URL is not http(s)", id)
	}
	type field struct{ Name, Value string }
	var fields []field
	for k, v := range p.RedirectForm {
		fields = append(fields, field{k, v})
	}
	sort.Slice(fields, func(i, j int) bool { return fields[i].Name < fields[j].Name })
	return checkoutPage.Execute(w, struct {
		URL    string
		Fields []field
	}{p.RedirectURL, fields})
}
