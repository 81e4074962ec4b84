package store

import "fmt"

// Limits of ListInbox and ListEvents. A zero Limit means DefaultListLimit.
const (
	DefaultListLimit = 50
	MaxListLimit     = 500
)

// Validate checks the limit. Whether the cursor is valid is up to the store
// that issued it.
func (q ListQuery) Validate() error {
	if q.Limit < 0 || q.Limit > MaxListLimit {
		return fmt.Errorf("%w: limit %d is outside 0..%d", ErrInvalidQuery, q.Limit, MaxListLimit)
	}
	return nil
}

// Validate checks the limit and that Since is not after Until.
func (q EventQuery) Validate() error {
	if err := (ListQuery{Limit: q.Limit}).Validate(); err != nil {
		return err
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && q.Since.After(q.Until) {
		return fmt.Errorf("%w: since is after until", ErrInvalidQuery)
	}
	return nil
}

// limit returns the page size a valid query asks for.
func (q ListQuery) limit() int {
	if q.Limit == 0 {
		return DefaultListLimit
	}
	return q.Limit
}
