package provider

import (
	"fmt"
	"strings"
)

// Money is an amount in the currency's minor unit: 1999 USD is 19.99 dollars,
// and 12990 CLP is 12990 pesos because CLP has no minor unit.
type Money struct {
	Amount   int64
	Currency string // ISO 4217, upper case
}

// zeroDecimal lists the ISO 4217 currencies without a minor unit that the
// gateway's providers handle (Stripe's zero-decimal list).
var zeroDecimal = map[string]bool{
	"BIF": true, "CLP": true, "DJF": true, "GNF": true, "JPY": true, "KMF": true,
	"KRW": true, "MGA": true, "PYG": true, "RWF": true, "UGX": true, "VND": true,
	"VUV": true, "XAF": true, "XOF": true, "XPF": true,
}

// MinorUnits returns how many decimal places the currency's minor unit has:
// 0 for CLP or JPY, 2 otherwise.
func MinorUnits(currency string) int {
	if zeroDecimal[strings.ToUpper(currency)] {
		return 0
	}
	return 2
}

// Validate reports whether m has a positive amount and a three-letter
// upper-case currency code.
func (m Money) Validate() error {
	if m.Amount <= 0 {
		return fmt.Errorf("provider: amount must be positive, got %d", m.Amount)
	}
	if len(m.Currency) != 3 || strings.ToUpper(m.Currency) != m.Currency || strings.ContainsFunc(m.Currency, func(r rune) bool { return r < 'A' || r > 'Z' }) {
		return fmt.Errorf("provider: currency %q must be an upper-case ISO 4217 code", m.Currency)
	}
	return nil
}

// String formats m for people, e.g. "19.99 USD" or "12990 CLP".
func (m Money) String() string {
	if MinorUnits(m.Currency) == 0 {
		return fmt.Sprintf("%d %s", m.Amount, m.Currency)
	}
	sign := ""
	a := m.Amount
	if a < 0 {
		sign, a = "-", -a
	}
	return fmt.Sprintf("%s%d.%02d %s", sign, a/100, a%100, m.Currency)
}
