// Package audit records every plugin call in the tenant's audit log, with
// credentials and card data removed before anything reaches storage.
package audit

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
)

// Redacted replaces a secret or a sensitive field's value.
const Redacted = "[redacted]"

var unencodable = json.RawMessage(`{"error":"unencodable"}`)

// Redact returns v as JSON with secrets and card data removed:
//   - the value of every object key that names a credential or card field
//     (case-insensitive: secret, password, token, api_key, authorization,
//     cvc, cvv, card_number, pan, …) becomes "[redacted]", whatever it was;
//   - every occurrence of a non-empty entry of secrets, in any string or
//     key, becomes "[redacted]";
//   - a card number (13–19 digits, spaces or dashes allowed between them,
//     passing the Luhn check) inside any string or key is masked to its last
//     four digits ("************4242"). A JSON number is masked (and becomes
//     a string) only if it also starts with 2–6, the card networks' ranges,
//     so that millisecond timestamps stay numbers.
//
// []byte and json.RawMessage holding valid JSON are redacted as that JSON;
// holding anything else, as one string. If v cannot be encoded the result is
// {"error":"unencodable"}. Redact never panics and always returns valid JSON.
// Object keys come out sorted.
func Redact(v any, secrets []string) json.RawMessage {
	raw, ok := encode(v)
	if !ok {
		return unencodable
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return unencodable
	}
	s := newScrubber(secrets)
	out, ok := marshal(s.walk(doc))
	if !ok {
		return unencodable
	}
	return out
}

// Scrub removes secrets and card numbers from s as Redact does in strings.
// Use it for error messages and other free text.
func Scrub(s string, secrets []string) string {
	return newScrubber(secrets).scrub(s)
}

// encode marshals v, recovering from a panicking MarshalJSON.
func encode(v any) (raw []byte, ok bool) {
	defer func() {
		if recover() != nil {
			raw, ok = nil, false
		}
	}()
	var b []byte
	switch x := v.(type) {
	case json.RawMessage:
		b = x
	case []byte:
		b = x
	default:
		raw, err := json.Marshal(v)
		return raw, err == nil
	}
	switch {
	case len(bytes.TrimSpace(b)) == 0:
		return []byte("null"), true
	case json.Valid(b):
		return b, true
	}
	raw, err := json.Marshal(string(b))
	return raw, err == nil
}

func marshal(v any) (json.RawMessage, bool) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, false
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), true
}

type scrubber struct {
	secrets []string
}

func newScrubber(secrets []string) *scrubber {
	s := &scrubber{}
	for _, sec := range secrets {
		if sec != "" && !slices.Contains(s.secrets, sec) {
			s.secrets = append(s.secrets, sec)
		}
	}
	return s
}

func (s *scrubber) walk(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, val := range x {
			if sensitiveKey(k) {
				out[s.scrub(k)] = Redacted
				continue
			}
			out[s.scrub(k)] = s.walk(val)
		}
		return out
	case []any:
		for i := range x {
			x[i] = s.walk(x[i])
		}
		return x
	case string:
		return s.scrub(x)
	case json.Number:
		return s.number(x)
	}
	return v // bool, nil
}

// number scrubs a JSON number: a secret inside it, or a card number.
func (s *scrubber) number(n json.Number) any {
	str := string(n)
	if r := s.replaceSecrets(str); r != str {
		return r
	}
	if len(str) >= 13 && len(str) <= 19 && str[0] >= '2' && str[0] <= '6' && allDigits(str) && luhn([]byte(str)) {
		return mask([]byte(str))
	}
	return n
}

// scrub removes secrets first (a secret may contain digits), then card
// numbers.
func (s *scrubber) scrub(str string) string {
	return maskPANs(s.replaceSecrets(str))
}

// replaceSecrets replaces every occurrence of every secret, overlapping ones
// included, with one Redacted per covered stretch.
func (s *scrubber) replaceSecrets(str string) string {
	if len(s.secrets) == 0 {
		return str
	}
	type span struct{ from, to int }
	var spans []span
	for _, sec := range s.secrets {
		for off := 0; off < len(str); {
			i := strings.Index(str[off:], sec)
			if i < 0 {
				break
			}
			spans = append(spans, span{off + i, off + i + len(sec)})
			off += i + 1
		}
	}
	if len(spans) == 0 {
		return str
	}
	slices.SortFunc(spans, func(a, b span) int { return a.from - b.from })
	var b strings.Builder
	last := 0
	for i := 0; i < len(spans); {
		from, to := spans[i].from, spans[i].to
		for i++; i < len(spans) && spans[i].from <= to; i++ {
			to = max(to, spans[i].to)
		}
		b.WriteString(str[last:from])
		b.WriteString(Redacted)
		last = to
	}
	b.WriteString(str[last:])
	return b.String()
}

// sensitiveKey reports whether a field with this name holds a credential or
// card data. Most names match as substrings once case and separators are
// ignored ("clientSecret", "X-Api-Key"); short ones that occur inside
// ordinary words ("pan" in "company") must be a whole word of the name
// ("card_pan", "cardPAN").
func sensitiveKey(k string) bool {
	norm := strings.Map(func(r rune) rune {
		switch r {
		case '_', '-', ' ', '.':
			return -1
		}
		return r
	}, strings.ToLower(k))
	for _, sub := range sensitiveSubstrings {
		if strings.Contains(norm, sub) {
			return true
		}
	}
	for _, w := range words(k) {
		if slices.Contains(sensitiveWords, w) {
			return true
		}
	}
	return false
}

var sensitiveSubstrings = []string{
	"secret", "password", "passwd", "passphrase", "token", "apikey", "authorization",
	"cvc", "cvv", "cardnumber", "privatekey", "credential", "cookie",
}

var sensitiveWords = []string{"pan", "pin", "pwd", "pass", "auth"}

// words splits a key into lower-case words at non-letters and at
// lower-to-upper case changes: "cardPAN_last4" → card, pan, last.
func words(k string) []string {
	var out []string
	start := -1
	flush := func(end int) {
		if start >= 0 {
			out = append(out, strings.ToLower(k[start:end]))
			start = -1
		}
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		lower, upper := c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z'
		switch {
		case !lower && !upper:
			flush(i)
		case upper && start >= 0 && k[i-1] >= 'a' && k[i-1] <= 'z':
			flush(i)
			start = i
		case start < 0:
			start = i
		}
	}
	flush(len(k))
	return out
}

// ---- card numbers

const (
	panMin = 13
	panMax = 19
	maxSep = 3 // separators allowed between two digit groups
)

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isSep(c byte) bool   { return c == ' ' || c == '-' }

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// maskPANs masks every card number in s. A run of digit groups separated by
// up to maxSep spaces or dashes is searched for consecutive groups holding
// 13–19 digits that pass the Luhn check; the longest such stretch from each
// group on is masked. A single group of more than 19 digits is no card
// number.
func maskPANs(s string) string {
	digits := 0
	for i := 0; i < len(s); i++ {
		if isDigit(s[i]) {
			digits++
		}
	}
	if digits < panMin {
		return s
	}
	type group struct{ from, to int } // byte offsets of a digit group
	var (
		b      strings.Builder
		last   int
		groups []group
		buf    [panMax]byte
	)
	for i := 0; i < len(s); {
		if !isDigit(s[i]) {
			i++
			continue
		}
		groups = groups[:0]
		j := i
		for {
			from := j
			for j < len(s) && isDigit(s[j]) {
				j++
			}
			groups = append(groups, group{from, j})
			k := j
			for k < len(s) && k-j < maxSep && isSep(s[k]) {
				k++
			}
			if k == j || k >= len(s) || !isDigit(s[k]) {
				break
			}
			j = k
		}
		i = j
		for g := 0; g < len(groups); {
			// The longest Luhn-valid stretch of whole groups from g.
			best, n := -1, 0
			for h := g; h < len(groups); h++ {
				gr := groups[h]
				if n+gr.to-gr.from > panMax {
					break
				}
				n += copy(buf[n:], s[gr.from:gr.to])
				if n >= panMin && luhn(buf[:n]) {
					best = h
				}
			}
			if best < 0 {
				g++
				continue
			}
			n = 0
			for h := g; h <= best; h++ {
				n += copy(buf[n:], s[groups[h].from:groups[h].to])
			}
			b.WriteString(s[last:groups[g].from])
			b.WriteString(mask(buf[:n]))
			last = groups[best].to
			g = best + 1
		}
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// luhn reports whether the digits pass the Luhn check.
func luhn(digits []byte) bool {
	sum := 0
	double := false
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

// mask keeps the last four digits.
func mask(digits []byte) string {
	return strings.Repeat("*", len(digits)-4) + string(digits[len(digits)-4:])
}
