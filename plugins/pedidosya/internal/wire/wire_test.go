package wire

import (
	"testing"
	"time"
)

func TestDecodeShippingList(t *testing.T) {
	tests := map[string]struct {
		in   string
		ids  []string
		fail bool
	}{
		"object":    {in: `{"data":[{"shippingId":"1"},{"id":"2"}]}`, ids: []string{"1", "2"}},
		"array":     {in: ` [{"id":"3"}]`, ids: []string{"3"}},
		"empty":     {in: `{"data":[]}`},
		"malformed": {in: `{"data":`, fail: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			list, err := DecodeShippingList([]byte(tc.in))
			if (err != nil) != tc.fail {
				t.Fatalf("err = %v", err)
			}
			if len(list) != len(tc.ids) {
				t.Fatalf("list = %+v", list)
			}
			for i, id := range tc.ids {
				if list[i].Identifier() != id {
					t.Errorf("list[%d] = %q, want %q", i, list[i].Identifier(), id)
				}
			}
		})
	}
}

func TestTimes(t *testing.T) {
	at := time.Date(2020, 7, 21, 17, 32, 28, 0, time.UTC)
	if got := FormatTime(at.In(time.FixedZone("CLT", -4*3600))); got != "2020-07-21T17:32:28Z" {
		t.Fatalf("FormatTime = %q", got)
	}
	for in, ok := range map[string]bool{
		"2020-07-21T17:32:28Z": true, "2020-07-21T13:32:28.000-04:00": true, "": false, "21/07/2020": false,
	} {
		got, parsed := ParseTime(in)
		if parsed != ok || (ok && !got.Equal(at)) {
			t.Errorf("ParseTime(%q) = %s, %v", in, got, parsed)
		}
	}
}

func TestErrorText(t *testing.T) {
	if got := (Error{Message: " boom "}).Text(); got != "boom" {
		t.Errorf("Text = %q", got)
	}
	if got := (Error{Messages: []string{"a", "b"}}).Text(); got != "a; b" {
		t.Errorf("Text = %q", got)
	}
}
