//go:build !race

package tenant

import (
	"strings"
	"testing"
)

// Authenticate runs on every tenant request; it must not allocate for keys
// of any sensible length.
func TestAuthenticateDoesNotAllocate(t *testing.T) {
	r := newRegistry(t)
	tests := map[string]string{
		"hit":   keyA,
		"miss":  keyA[:len(keyA)-1] + "x",
		"empty": "",
		"long":  strings.Repeat("k", 256),
	}
	for name, key := range tests {
		t.Run(name, func(t *testing.T) {
			if n := testing.AllocsPerRun(100, func() { r.Authenticate(key) }); n != 0 {
				t.Errorf("Authenticate allocates %v times per call, want 0", n)
			}
		})
	}
}
