package webhook

// The JSON sources of DedupKey: a validating scanner that agrees with
// encoding/json on which bodies decode, and a walk to one value, with no
// document built (FuzzDedupKey checks them against encoding/json).

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"
)

// jsonDecodes reports whether json.Unmarshal of doc into an interface
// value succeeds: doc is one valid JSON value (RFC 8259, nested at most
// maxDepth deep, as encoding/json allows) with nothing but white space
// around it, and every number in it fits a float64.
func jsonDecodes(doc []byte) bool {
	i, ok := checkValue(doc, skipSpace(doc, 0), 0)
	return ok && skipSpace(doc, i) == len(doc)
}

// maxDepth is encoding/json's nesting limit.
const maxDepth = 10000

// checkValue validates the value at i and returns the index past it.
func checkValue(doc []byte, i, depth int) (int, bool) {
	if i >= len(doc) {
		return i, false
	}
	switch c := doc[i]; c {
	case '"':
		return checkString(doc, i)
	case '{', '[':
		if depth++; depth > maxDepth {
			return i, false
		}
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		i = skipSpace(doc, i+1)
		if i < len(doc) && doc[i] == end {
			return i + 1, true
		}
		for {
			var ok bool
			if c == '{' {
				if i >= len(doc) || doc[i] != '"' {
					return i, false
				}
				if i, ok = checkString(doc, i); !ok {
					return i, false
				}
				if i = skipSpace(doc, i); i >= len(doc) || doc[i] != ':' {
					return i, false
				}
				i = skipSpace(doc, i+1)
			}
			if i, ok = checkValue(doc, i, depth); !ok {
				return i, false
			}
			if i = skipSpace(doc, i); i >= len(doc) {
				return i, false
			}
			switch doc[i] {
			case ',':
				i = skipSpace(doc, i+1)
			case end:
				return i + 1, true
			default:
				return i, false
			}
		}
	case 't':
		return i + 4, bytes.HasPrefix(doc[i:], []byte("true"))
	case 'f':
		return i + 5, bytes.HasPrefix(doc[i:], []byte("false"))
	case 'n':
		return i + 4, bytes.HasPrefix(doc[i:], []byte("null"))
	}
	return checkNumber(doc, i)
}

// plainByte marks the bytes a JSON string holds as they are: not a
// quote, a backslash or a control character.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// checkString validates the string token at i (doc[i] is '"').
func checkString(doc []byte, i int) (int, bool) {
	for i++; i < len(doc); i++ {
		for i < len(doc) && plainByte[doc[i]] {
			i++
		}
		if i == len(doc) {
			break
		}
		switch c := doc[i]; {
		case c == '"':
			return i + 1, true
		case c < 0x20:
			return i, false
		default: // a backslash
			if i++; i >= len(doc) {
				return i, false
			}
			switch doc[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(doc) {
					return i, false
				}
				for _, h := range doc[i+1 : i+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return i, false
					}
				}
				i += 4
			default:
				return i, false
			}
		}
	}
	return i, false
}

// checkNumber validates the number at i, and that it fits a float64.
func checkNumber(doc []byte, i int) (int, bool) {
	start := i
	digits := func() bool {
		from := i
		for i < len(doc) && '0' <= doc[i] && doc[i] <= '9' {
			i++
		}
		return i > from
	}
	if doc[i] == '-' {
		i++
	}
	if i < len(doc) && doc[i] == '0' {
		i++
	} else if !digits() {
		return i, false
	}
	if i < len(doc) && doc[i] == '.' {
		i++
		if !digits() {
			return i, false
		}
	}
	big := i-start > 300 // only then, or with an exponent, can a float64 overflow
	if i < len(doc) && (doc[i] == 'e' || doc[i] == 'E') {
		i++
		if i < len(doc) && (doc[i] == '+' || doc[i] == '-') {
			i++
		}
		if !digits() {
			return i, false
		}
		big = true
	}
	if big {
		if _, err := strconv.ParseFloat(string(doc[start:i]), 64); err != nil {
			return i, false
		}
	}
	return i, true
}

// jsonPath returns the scalar at a dotted path of doc, which jsonDecodes
// accepted, as a string, or "". Where an object repeats a key, the last
// one counts, as when decoding into a map.
func jsonPath(doc []byte, path string) string {
	i := skipSpace(doc, 0)
	for rest, more := path, true; more; {
		var seg string
		seg, rest, more = strings.Cut(rest, ".")
		switch doc[i] {
		case '{':
			i = objectMember(doc, i, seg)
		case '[':
			i = arrayElement(doc, i, seg)
		default:
			return ""
		}
		if i < 0 {
			return ""
		}
	}
	tok := doc[i:skipValue(doc, i)]
	switch tok[0] {
	case '"':
		return jsonString(tok)
	case 't':
		return "true"
	case 'f':
		return "false"
	case '{', '[', 'n':
		return ""
	}
	f, err := strconv.ParseFloat(string(tok), 64)
	if err != nil {
		return ""
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// objectMember returns where the value of the object at i's last member
// named key starts, or -1.
func objectMember(doc []byte, i int, key string) int {
	found := -1
	i = skipSpace(doc, i+1)
	for doc[i] != '}' {
		end := skipString(doc, i)
		name := doc[i:end]
		v := skipSpace(doc, skipSpace(doc, end)+1) // past the ':'
		if jsonStringIs(name, key) {
			found = v
		}
		if i = skipSpace(doc, skipValue(doc, v)); doc[i] == ',' {
			i = skipSpace(doc, i+1)
		}
	}
	return found
}

// arrayElement returns where element seg (a decimal index) of the array
// at i starts, or -1.
func arrayElement(doc []byte, i int, seg string) int {
	n, err := strconv.Atoi(seg)
	if err != nil || n < 0 {
		return -1
	}
	i = skipSpace(doc, i+1)
	for k := 0; doc[i] != ']'; k++ {
		if k == n {
			return i
		}
		if i = skipSpace(doc, skipValue(doc, i)); doc[i] == ',' {
			i = skipSpace(doc, i+1)
		}
	}
	return -1
}

// jsonStringIs reports whether the string token tok decodes to s.
func jsonStringIs(tok []byte, s string) bool {
	raw := tok[1 : len(tok)-1]
	if plainString(raw) {
		return string(raw) == s
	}
	return jsonString(tok) == s
}

// jsonString decodes a string token as encoding/json does (escapes
// resolved, invalid UTF-8 replaced).
func jsonString(tok []byte) string {
	raw := tok[1 : len(tok)-1]
	if plainString(raw) {
		return string(raw)
	}
	var s string
	if json.Unmarshal(tok, &s) != nil {
		return ""
	}
	return s
}

// plainString reports whether a string token's contents decode to
// themselves: no escapes, valid UTF-8.
func plainString(raw []byte) bool {
	for _, c := range raw {
		if c == '\\' || c >= utf8.RuneSelf {
			return !bytes.ContainsRune(raw, '\\') && utf8.Valid(raw)
		}
	}
	return true
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON white space.
func skipSpace(doc []byte, i int) int {
	for i < len(doc) {
		switch doc[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipString returns the index just past the string token at i.
func skipString(doc []byte, i int) int {
	for j := i + 1; ; j++ {
		switch doc[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
}

// skipValue returns the index just past the value at i of a document
// that jsonDecodes accepted.
func skipValue(doc []byte, i int) int {
	switch c := doc[i]; {
	case c == '"':
		return skipString(doc, i)
	case c == '{' || c == '[':
		i = skipSpace(doc, i+1)
		for doc[i] != '}' && doc[i] != ']' {
			if c == '{' {
				i = skipSpace(doc, skipSpace(doc, skipString(doc, i))+1) // key and ':'
			}
			if i = skipSpace(doc, skipValue(doc, i)); doc[i] == ',' {
				i = skipSpace(doc, i+1)
			}
		}
		return i + 1
	case c == 't' || c == 'n':
		return i + 4
	case c == 'f':
		return i + 5
	}
	for i < len(doc) && (doc[i] >= '0' && doc[i] <= '9' || doc[i] == '-' || doc[i] == '+' || doc[i] == '.' || doc[i] == 'e' || doc[i] == 'E') {
		i++
	}
	return i
}
