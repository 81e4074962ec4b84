package webhook

import (
	"net/textproto"
	"net/url"
	"strings"

	"github.com/pipecore/pipecore/core/internal/signature"
)

// DedupKey derives the provider's id of a notification from the sources a
// plugin declares (provider.WebhookSpec.DedupKey): "json:<dotted.path>"
// (numeric segments index arrays), "header:<Name>", "query:<name>" and
// "form:<name>". The values are joined with "|". When there are no
// sources, or one yields nothing, the key is the body's SHA-256, so that
// at least byte-identical redeliveries are recognised.
//
// A json source yields what decoding the body with encoding/json into an
// interface value and walking the path would (a string, a number in its
// shortest decimal form, a boolean; nothing for null, objects, arrays or a
// body that does not decode), without building the document: it is on the
// ingress path of every webhook.
//
// It runs only after the signature has been verified.
func DedupKey(sources []string, r signature.Request) string {
	if len(sources) == 0 {
		return bodyKey(r.Body)
	}
	var (
		checked, decodes bool
		form             url.Values
	)
	parts := make([]string, 0, len(sources))
	for _, src := range sources {
		kind, name, _ := strings.Cut(src, ":")
		var v string
		switch kind {
		case "json":
			if !checked {
				checked, decodes = true, jsonDecodes(r.Body)
			}
			if !decodes {
				return bodyKey(r.Body)
			}
			v = jsonPath(r.Body, name)
		case "header":
			if vs := r.Header[textproto.CanonicalMIMEHeaderKey(name)]; len(vs) > 0 {
				v = vs[0]
			}
		case "query":
			if vs := r.Query[name]; len(vs) > 0 {
				v = vs[0]
			}
		case "form":
			if form == nil {
				form, _ = url.ParseQuery(string(r.Body))
			}
			v = form.Get(name)
		}
		if v == "" {
			return bodyKey(r.Body)
		}
		parts = append(parts, v)
	}
	if len(parts) == 1 {
		return parts[0]
	}
	return strings.Join(parts, "|")
}
