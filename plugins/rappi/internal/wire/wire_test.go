package wire

import (
	"encoding/json"
	"testing"

	"github.com/pipecore/pipecore/sdk/delivery"
)

func TestStatus(t *testing.T) {
	tests := map[string]delivery.Status{
		"CREATED": delivery.StatusPending, "not_assigned": delivery.StatusPending,
		"ASSIGNED": delivery.StatusAssigned, "taken_visible_order": delivery.StatusAssigned, " taken ": delivery.StatusAssigned,
		"PICKED_UP": delivery.StatusPickedUp, "in_transit": delivery.StatusPickedUp,
		"DELIVERED": delivery.StatusDelivered, "finished": delivery.StatusDelivered,
		"CANCELED": delivery.StatusCancelled, "cancelled": delivery.StatusCancelled, "canceled_with_charge": delivery.StatusCancelled,
		"canceled_without_charge": delivery.StatusCancelled,
		"FAILED":                  delivery.StatusFailed, "returned": delivery.StatusFailed,
	}
	for in, want := range tests {
		if got, ok := Status(in); !ok || got != want {
			t.Errorf("Status(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "ready_for_pickup", "PING", "CANCELEDX"} {
		if got, ok := Status(in); ok {
			t.Errorf("Status(%q) = %q, want unknown", in, got)
		}
	}
	for s, st := range statuses {
		if !st.Valid() {
			t.Errorf("%s maps to %q, not a catalog status", s, st)
		}
	}
}

func TestFlexID(t *testing.T) {
	tests := map[string]FlexID{`"106"`: "106", `344949817`: "344949817", `null`: "", `""`: ""}
	for in, want := range tests {
		var id FlexID
		if err := json.Unmarshal([]byte(in), &id); err != nil || id != want {
			t.Errorf("%s → %q, %v; want %q", in, id, err, want)
		}
	}
	for _, in := range []string{`{"a":1}`, `[1]`, `true`} {
		var id FlexID
		if err := json.Unmarshal([]byte(in), &id); err == nil {
			t.Errorf("%s accepted as %q", in, id)
		}
	}
	b, _ := json.Marshal(struct {
		ID FlexID `json:"id"`
	}{"7"})
	if string(b) != `{"id":"7"}` {
		t.Errorf("marshal = %s", b)
	}
}

func TestCountryHosts(t *testing.T) {
	if _, ok := CountryHosts[DefaultCountry]; !ok {
		t.Fatalf("no host for the default country %s", DefaultCountry)
	}
	if DeliveryPath("a/b") != DeliveriesPath+"/a%2Fb" || CancelPath("1") != DeliveriesPath+"/1"+CancelSuffix {
		t.Fatal("paths do not escape ids")
	}
}
