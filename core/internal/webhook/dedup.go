package webhook

import (
	"encoding/json"
	"net/textproto"
	"net/url"
	"strconv"
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
// It runs only after the signature has been verified.
func DedupKey(sources []string, r signature.Request) string {
	if len(sources) == 0 {
		return bodyKey(r.Body)
	}
	var doc any
	var form url.Values
	parts := make([]string, 0, len(sources))
	for _, src := range sources {
		kind, name, _ := strings.Cut(src, ":")
		var v string
		switch kind {
		case "json":
			if doc == nil {
				if json.Unmarshal(r.Body, &doc) != nil {
					return bodyKey(r.Body)
				}
			}
			v = jsonPath(doc, name)
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
	return strings.Join(parts, "|")
}

// jsonPath returns the scalar at a dotted path as a string, or "".
func jsonPath(doc any, path string) string {
	cur := doc
	for _, seg := range strings.Split(path, ".") {
		switch node := cur.(type) {
		case map[string]any:
			cur = node[seg]
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(node) {
				return ""
			}
			cur = node[i]
		default:
			return ""
		}
	}
	switch v := cur.(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	}
	return ""
}
