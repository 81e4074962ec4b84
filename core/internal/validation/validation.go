// Package validation is the error every gateway service returns for a
// request it refuses before calling anyone: it names the field, so the
// API can answer 400 with a message the caller can act on.
package validation

// Error is a refused request field.
type Error struct {
	Field   string
	Message string
}

func (e *Error) Error() string { return e.Field + ": " + e.Message }

// New returns the error for field.
func New(field, message string) *Error { return &Error{Field: field, Message: message} }
