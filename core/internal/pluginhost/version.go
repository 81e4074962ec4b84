package pluginhost

import (
	"fmt"
	"strings"

	"github.com/Masterminds/semver/v3"
)

// ParseVersion parses a plugin version: MAJOR.MINOR.PATCH with optional
// -prerelease and +build parts, and an optional leading "v". Versions that
// are not semantic (a bare commit hash, "dev") do not parse: such builds
// serve only tenants without a version constraint.
func ParseVersion(s string) (*semver.Version, error) {
	v, err := semver.StrictNewVersion(strings.TrimPrefix(s, "v"))
	if err != nil {
		return nil, fmt.Errorf("pluginhost: %q is not a semantic version (MAJOR.MINOR.PATCH): %w", s, err)
	}
	return v, nil
}

// Constraint is a tenant's version constraint on one plugin, such as
// "~1.3" (>= 1.3.0, < 1.4.0), "^1.2" (>= 1.2.0, < 2.0.0), ">= 1.2, < 1.5"
// or "1.3.2"; "||" separates alternatives. The zero Constraint matches
// every version, semantic or not.
type Constraint struct {
	raw string
	c   *semver.Constraints
}

// ParseConstraint parses a version constraint; "" is the zero Constraint.
func ParseConstraint(s string) (Constraint, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Constraint{}, nil
	}
	c, err := semver.NewConstraint(s)
	if err != nil {
		return Constraint{}, fmt.Errorf("pluginhost: invalid version constraint %q (write e.g. \"~1.3\", \"^1.2\" or \">= 1.2, < 1.5\"): %w", s, err)
	}
	return Constraint{raw: s, c: c}, nil
}

// String returns the constraint as written; "" for the zero Constraint.
func (c Constraint) String() string { return c.raw }

// Any reports whether c is the zero Constraint.
func (c Constraint) Any() bool { return c.c == nil }

// Allows reports whether version satisfies c. A version that is not
// semantic satisfies only the zero Constraint.
func (c Constraint) Allows(version string) bool {
	if c.c == nil {
		return true
	}
	v, err := ParseVersion(version)
	return err == nil && c.c.Check(v)
}

// newer reports whether version a sorts before b in "newest first" order:
// semantic versions by precedence, then other known versions, then unknown
// ones ("").
func newer(a, b string) bool {
	va, ea := ParseVersion(a)
	vb, eb := ParseVersion(b)
	switch {
	case ea == nil && eb == nil:
		return va.GreaterThan(vb)
	case ea == nil:
		return true
	case eb == nil:
		return false
	}
	return a != "" && b == ""
}

// sameVersion reports whether a and b name one version ("v1.3.0" is
// "1.3.0"; "1.3.0+build1" is not).
func sameVersion(a, b string) bool {
	va, ea := ParseVersion(a)
	vb, eb := ParseVersion(b)
	if ea != nil || eb != nil {
		return a == b
	}
	return va.Equal(vb) && va.Metadata() == vb.Metadata()
}
