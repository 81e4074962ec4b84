package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// maxNodes bounds the YAML nodes visited while decoding, counting every
// expansion of an alias, so that a small file cannot make Parse do
// unbounded work.
const maxNodes = 100_000

// Load reads the file at path and parses it with Parse, naming the file in
// every message as path is written. Reading the file is its only I/O.
func Load(path string, lookupEnv func(string) (string, bool)) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(data, path, lookupEnv)
}

// Parse decodes a YAML configuration, applies the defaults and validates
// it (Validate). source names the input in messages, e.g. "pipecore.yaml".
//
// Decoding is strict: unknown keys, duplicate keys and values of the wrong
// type are errors. Every scalar value may reference environment variables
// as ${NAME}, looked up with lookupEnv (os.LookupEnv when nil); "$${"
// stands for a literal "${", and any other "$" is literal. A reference to
// an unset variable is an error; a variable set to "" expands to "".
// Anchors, aliases and merge keys (<<) are supported.
//
// Every problem found is returned, joined with errors.Join, each naming the
// source, the path (e.g. tenants.tableflow.api_keys[0]) and the line when
// known. No message contains a credential or API key. Parse never panics.
func Parse(data []byte, source string, lookupEnv func(string) (string, bool)) (*Config, error) {
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	d := &decoder{source: source, lookup: lookupEnv, lines: make(map[string]int), budget: maxNodes}
	c := &Config{source: source, lines: d.lines}

	root, err := parseYAML(data)
	if err != nil {
		d.add("", 0, "%s", strings.TrimPrefix(err.Error(), "yaml: "))
		return nil, d.err()
	}
	if root != nil {
		d.decode(root, reflect.ValueOf(c).Elem(), "")
	}
	c.setDefaults()
	for _, p := range c.validate() {
		// A value that failed to decode is zero; its validation problem
		// ("api key is empty") would only repeat the first message.
		if !d.failedAt(p.path) {
			d.probs = append(d.probs, p)
		}
	}
	if len(d.probs) > 0 {
		return nil, d.err()
	}
	return c, nil
}

// parseYAML returns the root node of the single document in data, or nil
// for an empty document.
func parseYAML(data []byte) (root *yaml.Node, err error) {
	defer func() {
		// yaml.v3 recovers its own errors; this guards Parse's promise
		// never to panic against a parser bug.
		if r := recover(); r != nil {
			root, err = nil, fmt.Errorf("yaml: cannot parse the file (%v)", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, err
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("yaml: line %d: a second YAML document starts here; the configuration must be one document", next.Line)
	}
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			return nil, nil
		}
		return doc.Content[0], nil
	}
	return &doc, nil
}

// problem is one mistake in a configuration.
type problem struct {
	source string
	path   string
	line   int
	msg    string
}

func (p *problem) Error() string {
	var b strings.Builder
	if p.source != "" {
		b.WriteString(p.source)
		b.WriteString(": ")
	}
	if p.path != "" {
		b.WriteString(p.path)
		b.WriteString(": ")
	}
	b.WriteString(p.msg)
	if p.line > 0 {
		fmt.Fprintf(&b, " (line %d)", p.line)
	}
	return b.String()
}

func joinProblems(ps []*problem) error {
	if len(ps) == 0 {
		return nil
	}
	errs := make([]error, len(ps))
	for i, p := range ps {
		errs[i] = p
	}
	return errors.Join(errs...)
}

// decoder walks a yaml.Node tree against the Config types, using their
// yaml struct tags.
type decoder struct {
	source    string
	lookup    func(string) (string, bool)
	probs     []*problem
	failed    []string       // paths whose value did not decode
	lines     map[string]int // path → line of its key
	budget    int
	exhausted bool
}

func (d *decoder) add(path string, line int, format string, args ...any) {
	d.probs = append(d.probs, &problem{source: d.source, path: path, line: line, msg: fmt.Sprintf(format, args...)})
}

// fail records a problem with the value at path.
func (d *decoder) fail(path string, line int, format string, args ...any) {
	d.add(path, line, format, args...)
	d.failed = append(d.failed, path)
}

// exhaust reports, once, that the node budget is spent. Everything decoded
// so far is suspect, so validation is skipped.
func (d *decoder) exhaust(path string, line int) {
	if !d.exhausted {
		d.exhausted = true
		d.add(path, line, "the document is too large once its aliases are expanded")
		d.failed = append(d.failed, "")
	}
}

func (d *decoder) err() error { return joinProblems(d.probs) }

// failedAt reports whether the value at path, or one of its parents,
// failed to decode.
func (d *decoder) failedAt(path string) bool {
	for _, f := range d.failed {
		if within(path, f) {
			return true
		}
	}
	return false
}

// within reports whether path is parent or lies under it.
func within(path, parent string) bool {
	if parent == "" || path == parent {
		return true
	}
	return strings.HasPrefix(path, parent) && (path[len(parent)] == '.' || path[len(parent)] == '[')
}

var durationType = reflect.TypeFor[Duration]()

// decode stores n into v, reporting problems under path.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if d.budget--; d.budget < 0 {
		d.exhaust(path, n.Line)
		return
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			d.fail(path, n.Line, "unresolved alias")
			return
		}
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return // null leaves the zero value: the default
	}
	if v.Type() == durationType {
		s, ok := d.scalar(n, path, "a duration such as \"30s\"")
		if !ok {
			return
		}
		var dur Duration
		if err := dur.UnmarshalText([]byte(s)); err != nil {
			// Quote the text as written, not as expanded.
			d.fail(path, n.Line, "invalid duration %q (write a number with a unit, e.g. \"30s\" or \"2m\")", truncate(n.Value))
			return
		}
		v.Set(reflect.ValueOf(dur))
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		elem := reflect.New(v.Type().Elem())
		d.decode(n, elem.Elem(), path)
		v.Set(elem)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Map:
		d.decodeMap(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(path, n.Line, "expected a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			p := path + "[" + strconv.Itoa(i) + "]"
			d.lines[p] = item.Line
			d.decode(item, s.Index(i), p)
		}
		v.Set(s)
	case reflect.String:
		if s, ok := d.scalar(n, path, "a string"); ok {
			v.SetString(s)
		}
	case reflect.Bool:
		s, ok := d.scalar(n, path, "true or false")
		if !ok {
			return
		}
		switch s {
		case "true", "True", "TRUE":
			v.SetBool(true)
		case "false", "False", "FALSE":
			v.SetBool(false)
		default:
			d.fail(path, n.Line, "expected true or false, got %q", truncate(n.Value))
		}
	case reflect.Float64:
		s, ok := d.scalar(n, path, "a number")
		if !ok {
			return
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			d.fail(path, n.Line, "expected a number, got %q", truncate(n.Value))
			return
		}
		v.SetFloat(f)
	case reflect.Int, reflect.Int64:
		s, ok := d.scalar(n, path, "a whole number")
		if !ok {
			return
		}
		i, err := strconv.ParseInt(s, 0, 64)
		if err != nil || v.OverflowInt(i) {
			d.fail(path, n.Line, "expected a whole number, got %q", truncate(n.Value))
			return
		}
		v.SetInt(i)
	default:
		// Unreachable for the Config types; reported rather than panicking.
		d.fail(path, n.Line, "cannot decode into %s", v.Type())
	}
}

// decodeStruct decodes a mapping into the struct v, field by yaml tag.
func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.fail(path, n.Line, "expected a mapping of keys to values, got %s", describe(n))
		return
	}
	t := v.Type()
	for _, e := range d.entries(n, path) {
		key := e.key.Value
		i := fieldIndex(t, key)
		if i < 0 {
			d.add(path, e.key.Line, "unknown key %q", key)
			continue
		}
		p := join(path, key)
		d.lines[p] = e.key.Line
		d.decode(e.val, v.Field(i), p)
	}
}

// decodeMap decodes a mapping into the map v, whose keys are strings.
func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.fail(path, n.Line, "expected a mapping of keys to values, got %s", describe(n))
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(v.Type()))
	}
	for _, e := range d.entries(n, path) {
		key := e.key.Value
		p := join(path, key)
		d.lines[p] = e.key.Line
		elem := reflect.New(v.Type().Elem()).Elem()
		d.decode(e.val, elem, p)
		v.SetMapIndex(reflect.ValueOf(key), elem)
	}
}

// entry is one key/value pair of a mapping.
type entry struct{ key, val *yaml.Node }

// entries returns the pairs of mapping n with merge keys (<<) applied:
// a key written in n wins over a merged one, and an earlier merged mapping
// wins over a later one. Duplicate and non-scalar keys are reported and
// dropped.
func (d *decoder) entries(n *yaml.Node, path string) []entry {
	if d.budget--; d.budget < 0 {
		d.exhaust(path, n.Line)
		return nil
	}
	var own, merged []entry
	first := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merged = append(merged, d.mergeSources(v, path)...)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.fail(path, k.Line, "a key must be a plain string, got %s", describe(k))
			continue
		}
		if line, dup := first[k.Value]; dup {
			d.add(path, k.Line, "duplicate key %q (first at line %d)", k.Value, line)
			continue
		}
		first[k.Value] = k.Line
		own = append(own, entry{k, v})
	}
	for _, e := range merged {
		if _, ok := first[e.key.Value]; !ok {
			first[e.key.Value] = e.key.Line
			own = append(own, e)
		}
	}
	return own
}

// mergeSources returns the entries a merge key's value contributes: a
// mapping, or a list of mappings, usually aliases.
func (d *decoder) mergeSources(v *yaml.Node, path string) []entry {
	if v.Kind == yaml.AliasNode && v.Alias != nil {
		v = v.Alias
	}
	switch v.Kind {
	case yaml.MappingNode:
		return d.entries(v, path)
	case yaml.SequenceNode:
		var out []entry
		for _, item := range v.Content {
			if item.Kind == yaml.AliasNode && item.Alias != nil {
				item = item.Alias
			}
			if item.Kind != yaml.MappingNode {
				d.fail(path, item.Line, "a merge key (<<) takes a mapping or a list of mappings, got %s", describe(item))
				continue
			}
			out = append(out, d.entries(item, path)...)
		}
		return out
	default:
		d.fail(path, v.Line, "a merge key (<<) takes a mapping or a list of mappings, got %s", describe(v))
		return nil
	}
}

// scalar returns the expanded text of the scalar n.
func (d *decoder) scalar(n *yaml.Node, path, want string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.fail(path, n.Line, "expected %s, got %s", want, describe(n))
		return "", false
	}
	s, ok := d.expand(n.Value, path, n.Line)
	if !ok {
		d.failed = append(d.failed, path)
	}
	return s, ok
}

// expand replaces ${NAME} references in s. Messages name variables but
// never include s, which may be a credential.
func (d *decoder) expand(s, path string, line int) (string, bool) {
	if !strings.Contains(s, "${") {
		return s, true
	}
	var b strings.Builder
	ok := true
	for i := 0; i < len(s); {
		j := strings.IndexByte(s[i:], '$')
		if j < 0 {
			b.WriteString(s[i:])
			break
		}
		j += i
		b.WriteString(s[i:j])
		rest := s[j:]
		switch {
		case strings.HasPrefix(rest, "$${"):
			b.WriteString("${")
			i = j + 3
		case strings.HasPrefix(rest, "${"):
			end := strings.IndexByte(rest, '}')
			if end < 0 {
				d.add(path, line, "unterminated ${ (write $${ for a literal ${)")
				return "", false
			}
			name := rest[2:end]
			i = j + end + 1
			if !isEnvName(name) {
				d.add(path, line, "invalid environment variable reference: ${...} must hold a name of letters, digits and _ not starting with a digit (write $${ for a literal ${)")
				ok = false
				continue
			}
			val, set := d.lookup(name)
			if !set {
				d.add(path, line, "environment variable %s is not set", name)
				ok = false
				continue
			}
			b.WriteString(val)
		default:
			b.WriteByte('$')
			i = j + 1
		}
	}
	return b.String(), ok
}

func isEnvName(s string) bool {
	if s == "" || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '_' && (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// fieldIndex returns the index of the field of struct type t whose yaml
// tag names key, or -1.
func fieldIndex(t reflect.Type, key string) int {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == key && name != "" && name != "-" {
			return i
		}
	}
	return -1
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		return "a single value"
	default:
		return "nothing"
	}
}

// join appends a mapping key to a dotted path, quoting a key that is not
// a plain word.
func join(path, key string) string {
	seg := key
	if !isPlainKey(key) {
		seg = strconv.Quote(key)
	}
	if path == "" {
		return seg
	}
	return path + "." + seg
}

func isPlainKey(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '_' && c != '-' && (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// truncate shortens a non-secret value quoted in a message.
func truncate(s string) string {
	const limit = 64
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
