package pedidosyafake_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pipecore/pipecore/plugins/pedidosya/internal/wire"
	"github.com/pipecore/pipecore/plugins/pedidosya/pedidosyafake"
)

func start(t testing.TB) *pedidosyafake.Server {
	t.Helper()
	s := pedidosyafake.Start()
	t.Cleanup(s.Close)
	return s
}

// call sends one request with auth as the Authorization header ("" sends
// none) and returns the status and body.
func call(t testing.TB, s *pedidosyafake.Server, method, path, auth string, body any) (int, []byte, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.URL()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

func validBody(ref string) wire.ShippingRequest {
	lat1, lng1, lat2, lng2 := -33.4263, -70.6170, -33.4124, -70.5850
	return wire.ShippingRequest{
		ReferenceID: ref,
		IsTest:      true,
		Items:       []wire.Item{{Type: wire.ItemStandard, Value: 12990, Description: "Pedido", Quantity: 1, Volume: 1000, Weight: 1}},
		Waypoints: []wire.Waypoint{
			{Type: wire.WaypointPickUp, AddressStreet: "Avenida Providencia 1234", City: "Providencia", Latitude: &lat1, Longitude: &lng1, Phone: "+56912345678", Name: "Tienda"},
			{Type: wire.WaypointDropOff, AddressStreet: "Avenida Apoquindo 4500", City: "Las Condes", Latitude: &lat2, Longitude: &lng2, Phone: "+56987654321", Name: "Camila"},
		},
	}
}

func decodeErr(t testing.TB, b []byte) wire.Error {
	t.Helper()
	var e wire.Error
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("error body %q is not JSON: %v", b, err)
	}
	return e
}

func create(t testing.TB, s *pedidosyafake.Server, ref string) wire.Shipping {
	t.Helper()
	st, b, _ := call(t, s, "POST", wire.PathShippings, pedidosyafake.Token, validBody(ref))
	if st != http.StatusOK {
		t.Fatalf("create: HTTP %d %s", st, b)
	}
	var sh wire.Shipping
	if err := json.Unmarshal(b, &sh); err != nil {
		t.Fatal(err)
	}
	return sh
}

func TestAuth(t *testing.T) {
	s := start(t)
	tests := map[string]struct {
		auth string
		want int
	}{
		"none":         {"", http.StatusUnauthorized},
		"wrong":        {"other-token", http.StatusUnauthorized},
		"bearer":       {"Bearer " + pedidosyafake.Token, http.StatusUnauthorized},
		"raw token ok": {pedidosyafake.Token, http.StatusOK},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			st, b, _ := call(t, s, "POST", wire.PathEstimates, tc.auth, validBody("ref-auth"))
			if st != tc.want {
				t.Fatalf("HTTP %d, want %d (%s)", st, tc.want, b)
			}
			if st == http.StatusUnauthorized {
				if e := decodeErr(t, b); e.Status != 401 || e.Code != wire.CodeUnauthorized || e.Message == "" {
					t.Fatalf("401 body = %+v", e)
				}
			}
		})
	}
}

func TestValidation(t *testing.T) {
	s := start(t)
	tests := map[string]func(*wire.ShippingRequest){
		"no referenceId":    func(r *wire.ShippingRequest) { r.ReferenceID = "" },
		"no items":          func(r *wire.ShippingRequest) { r.Items = nil },
		"item description":  func(r *wire.ShippingRequest) { r.Items[0].Description = "" },
		"item quantity":     func(r *wire.ShippingRequest) { r.Items[0].Quantity = 0 },
		"item weight":       func(r *wire.ShippingRequest) { r.Items[0].Weight = 21 },
		"items value":       func(r *wire.ShippingRequest) { r.Items[0].Value = 1_000_000 },
		"one waypoint":      func(r *wire.ShippingRequest) { r.Waypoints = r.Waypoints[:1] },
		"two pickups":       func(r *wire.ShippingRequest) { r.Waypoints[1].Type = wire.WaypointPickUp },
		"bad waypoint type": func(r *wire.ShippingRequest) { r.Waypoints[1].Type = "DROP" },
		"no street":         func(r *wire.ShippingRequest) { r.Waypoints[1].AddressStreet = " " },
		"no city":           func(r *wire.ShippingRequest) { r.Waypoints[0].City = "" },
		"no name":           func(r *wire.ShippingRequest) { r.Waypoints[0].Name = "" },
		"bad phone":         func(r *wire.ShippingRequest) { r.Waypoints[1].Phone = "call me" },
	}
	for name, mut := range tests {
		for _, path := range []string{wire.PathEstimates, wire.PathShippings} {
			t.Run(name+path, func(t *testing.T) {
				body := validBody("ref-" + name)
				mut(&body)
				st, b, _ := call(t, s, "POST", path, pedidosyafake.Token, body)
				if st != http.StatusBadRequest {
					t.Fatalf("HTTP %d, want 400 (%s)", st, b)
				}
				if e := decodeErr(t, b); e.Code != wire.CodeInvalidRequest || e.Message == "" {
					t.Fatalf("400 body = %+v", e)
				}
			})
		}
	}
	if s.Deliveries() != 0 {
		t.Fatalf("Deliveries = %d after only invalid creates", s.Deliveries())
	}
}

func TestEstimate(t *testing.T) {
	s := start(t)
	s.SetFee(1250, "UYU")
	s.SetETA(30 * time.Minute)
	st, b, _ := call(t, s, "POST", wire.PathEstimates, pedidosyafake.Token, validBody("ref-est"))
	if st != http.StatusOK {
		t.Fatalf("HTTP %d %s", st, b)
	}
	var est wire.Estimate
	if err := json.Unmarshal(b, &est); err != nil {
		t.Fatal(err)
	}
	if est.EstimateID == "" || len(est.DeliveryOffers) != 1 {
		t.Fatalf("estimate = %+v", est)
	}
	o := est.DeliveryOffers[0]
	if o.Pricing == nil || o.Pricing.Total != 12.5 || o.Pricing.Currency != "UYU" || o.DeliveryMode != wire.ModeExpress {
		t.Fatalf("offer = %+v pricing %+v", o, o.Pricing)
	}
	to, ok := wire.ParseTime(o.DeliveryTimeTo)
	if d := time.Until(to); !ok || d < 28*time.Minute || d > 31*time.Minute {
		t.Fatalf("deliveryTimeTo %q is %s away, want about 30m", o.DeliveryTimeTo, d)
	}
	if lim, ok := wire.ParseTime(o.ConfirmationTimeLimit); !ok || !lim.After(time.Now()) {
		t.Fatalf("confirmationTimeLimit %q not in the future", o.ConfirmationTimeLimit)
	}
	if s.Deliveries() != 0 {
		t.Fatal("an estimate counted as a delivery")
	}
}

func TestLifecycleWithWebhooks(t *testing.T) {
	s := start(t)
	var mu sync.Mutex
	var got []wire.Callback
	var auths []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var cb wire.Callback
		_ = json.NewDecoder(r.Body).Decode(&cb)
		mu.Lock()
		got = append(got, cb)
		auths = append(auths, r.Header.Get("Authorization"))
		mu.Unlock()
	}))
	defer hook.Close()
	s.SetWebhook(hook.URL, "hook-key-123")

	sh := create(t, s, "del_abc")
	if sh.ShippingID == "" || sh.ID != sh.ShippingID || sh.Status != wire.StatusConfirmed || sh.ReferenceID != "del_abc" {
		t.Fatalf("created = %+v", sh)
	}
	if sh.ShareLocationURL != "" {
		t.Fatal("a test shipping got a shareLocationUrl")
	}
	if sh.Route == nil || sh.Route.Pricing == nil || sh.Route.Pricing.Total != 2990 || sh.Route.Pricing.Currency != "CLP" || sh.Route.Distance <= 0 {
		t.Fatalf("route = %+v", sh.Route)
	}

	st, b, _ := call(t, s, "GET", wire.PathShippings+"?referenceId=del_abc", pedidosyafake.Token, nil)
	list, err := wire.DecodeShippingList(b)
	if st != http.StatusOK || err != nil || len(list) != 1 || list[0].Identifier() != sh.ShippingID {
		t.Fatalf("lookup: HTTP %d %s (%v)", st, b, err)
	}
	if _, b, _ := call(t, s, "GET", wire.PathShippings+"?referenceId=nothing", pedidosyafake.Token, nil); !strings.Contains(string(b), `"data":[]`) {
		t.Fatalf("empty lookup = %s", b)
	}

	for _, want := range []string{wire.StatusInProgress, wire.StatusPickedUp, wire.StatusCompleted} {
		status, err := s.Advance(sh.ShippingID)
		if err != nil || status != want {
			t.Fatalf("Advance = %q, %v; want %q", status, err, want)
		}
		if want == wire.StatusPickedUp {
			st, b, _ := call(t, s, "GET", wire.TrackingPath(sh.ShippingID), pedidosyafake.Token, nil)
			var tr wire.Tracking
			_ = json.Unmarshal(b, &tr)
			if st != http.StatusOK || tr.DeliveryName == "" || tr.Latitude == nil {
				t.Fatalf("tracking: HTTP %d %s", st, b)
			}
			st, b, _ = call(t, s, "POST", wire.CancelPath(sh.ShippingID), pedidosyafake.Token, wire.CancelRequest{ReasonText: "late"})
			if e := decodeErr(t, b); st != http.StatusBadRequest || e.Code != wire.CodeInvalidStatus || !strings.Contains(e.Message, wire.StatusPickedUp) {
				t.Fatalf("cancel after pickup: HTTP %d %+v", st, e)
			}
		}
	}
	if _, err := s.Advance(sh.ShippingID); err == nil {
		t.Fatal("Advance past COMPLETED succeeded")
	}
	if _, err := s.Advance("404"); err == nil {
		t.Fatal("Advance of an unknown shipping succeeded")
	}

	mu.Lock()
	defer mu.Unlock()
	if len(got) != 3 {
		t.Fatalf("%d callbacks, want 3", len(got))
	}
	for i, want := range []string{wire.StatusInProgress, wire.StatusPickedUp, wire.StatusCompleted} {
		cb := got[i]
		if cb.Topic != wire.TopicShippingStatus || cb.ID != sh.ShippingID || cb.ReferenceID != "del_abc" || cb.Data.Status != want || cb.Generated == "" {
			t.Errorf("callback %d = %+v", i, cb)
		}
		if auths[i] != "hook-key-123" {
			t.Errorf("callback %d Authorization = %q", i, auths[i])
		}
	}
	if got[0].Data.EstimatedPickUpTime == "" || got[1].Data.EstimatedDropOffTime == "" {
		t.Errorf("callbacks lack estimated times: %+v", got[:2])
	}
	if s.Deliveries() != 1 {
		t.Fatalf("Deliveries = %d", s.Deliveries())
	}
}

func TestWebhookFailureAndDisabled(t *testing.T) {
	s := start(t)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer hook.Close()
	sh := create(t, s, "del_hook")
	s.SetWebhook(hook.URL, "k")
	if st, err := s.Advance(sh.ShippingID); err == nil || st != wire.StatusInProgress {
		t.Fatalf("Advance with a failing webhook = %q, %v; want IN_PROGRESS and an error", st, err)
	}
	s.SetWebhook("", "")
	if st, err := s.Advance(sh.ShippingID); err != nil || st != wire.StatusPickedUp {
		t.Fatalf("Advance without webhook = %q, %v", st, err)
	}
}

func TestCancel(t *testing.T) {
	s := start(t)
	sh := create(t, s, "del_cancel")
	path := wire.CancelPath(sh.ShippingID)
	if st, b, _ := call(t, s, "POST", path, pedidosyafake.Token, map[string]string{}); st != http.StatusBadRequest {
		t.Fatalf("cancel without reasonText: HTTP %d %s", st, b)
	}
	for i := range 2 {
		st, b, _ := call(t, s, "POST", path, pedidosyafake.Token, wire.CancelRequest{ReasonText: "changed my mind"})
		var out wire.Shipping
		_ = json.Unmarshal(b, &out)
		if st != http.StatusOK || out.Status != wire.StatusCancelled || out.CancelCode != wire.CancelCodeUserCancelled {
			t.Fatalf("cancel #%d: HTTP %d %s", i+1, st, b)
		}
	}
	if st, _, _ := call(t, s, "POST", wire.CancelPath("nope"), pedidosyafake.Token, wire.CancelRequest{ReasonText: "x"}); st != http.StatusNotFound {
		t.Fatalf("cancel of an unknown id: HTTP %d", st)
	}
	if st, _, _ := call(t, s, "GET", wire.ShippingPath("nope"), pedidosyafake.Token, nil); st != http.StatusNotFound {
		t.Fatalf("get of an unknown id: HTTP %d", st)
	}
	if _, err := s.Advance(sh.ShippingID); err == nil {
		t.Fatal("Advance of a cancelled shipping succeeded")
	}
}

func TestFailNext(t *testing.T) {
	s := start(t)
	s.FailNext(http.StatusTooManyRequests, 1)
	st, b, h := call(t, s, "POST", wire.PathEstimates, pedidosyafake.Token, validBody("r"))
	if st != http.StatusTooManyRequests || h.Get("Retry-After") != "1" || decodeErr(t, b).Code != wire.CodeTooManyRequests {
		t.Fatalf("HTTP %d %s Retry-After %q", st, b, h.Get("Retry-After"))
	}
	s.FailNext(http.StatusServiceUnavailable, 2)
	for range 2 {
		if st, _, _ := call(t, s, "POST", wire.PathShippings, pedidosyafake.Token, validBody("r")); st != http.StatusServiceUnavailable {
			t.Fatalf("HTTP %d, want 503", st)
		}
	}
	if st, _, _ := call(t, s, "POST", wire.PathShippings, pedidosyafake.Token, validBody("r")); st != http.StatusOK {
		t.Fatalf("after the failures: HTTP %d", st)
	}
	if s.Deliveries() != 1 {
		t.Fatalf("Deliveries = %d, want 1", s.Deliveries())
	}
}

func TestRequestsAreCopies(t *testing.T) {
	s := start(t)
	call(t, s, "GET", wire.ShippingPath("1")+"?x=1", pedidosyafake.Token, nil)
	reqs := s.Requests()
	if len(reqs) != 1 || reqs[0].Method != "GET" || reqs[0].Path != "/v3/shippings/1?x=1" || reqs[0].Header.Get("Authorization") != pedidosyafake.Token {
		t.Fatalf("Requests = %+v", reqs)
	}
	reqs[0].Header.Set("Authorization", "changed")
	if s.Requests()[0].Header.Get("Authorization") != pedidosyafake.Token {
		t.Fatal("Requests shares headers with the fake")
	}
}

func TestDelayEndsOnClose(t *testing.T) {
	s := pedidosyafake.Start()
	s.SetDelay(time.Hour)
	errc := make(chan error, 1)
	go func() {
		resp, err := http.Get(s.URL() + wire.ShippingPath("1"))
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	for len(s.Requests()) == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hung on a delayed request")
	}
	<-errc
	s.Close() // idempotent
}

func TestUnknownRoutes(t *testing.T) {
	s := start(t)
	for _, tc := range []struct{ method, path string }{
		{"GET", "/v3/nothing"}, {"GET", wire.ShippingPath("1") + "/labels"},
	} {
		if st, _, _ := call(t, s, tc.method, tc.path, pedidosyafake.Token, nil); st != http.StatusNotFound {
			t.Errorf("%s %s: HTTP %d, want 404", tc.method, tc.path, st)
		}
	}
	for _, tc := range []struct{ method, path string }{
		{"GET", wire.PathEstimates}, {"DELETE", wire.PathShippings}, {"GET", wire.CancelPath("1")}, {"POST", wire.ShippingPath("1")},
	} {
		if st, _, _ := call(t, s, tc.method, tc.path, pedidosyafake.Token, nil); st != http.StatusMethodNotAllowed {
			t.Errorf("%s %s: HTTP %d, want 405", tc.method, tc.path, st)
		}
	}
}
