package wire

import (
	"context"
	"encoding/json"
	"time"

	"github.com/pipecore/pipecore/sdk/delivery"
	pb "github.com/pipecore/pipecore/sdk/internal/providerpb"
	"github.com/pipecore/pipecore/sdk/messaging"
	"github.com/pipecore/pipecore/sdk/payments"
	"github.com/pipecore/pipecore/sdk/provider"
)

// Conversions come in pairs (toPB..., from...), one pair per type, and are
// checked by round-trip tests.

func millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMillis(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

func callPB(ctx context.Context, t provider.Tenant) *pb.CallContext {
	return &pb.CallContext{
		TenantId:  t.ID(),
		Settings:  t.Settings(),
		Secrets:   t.RevealSecrets(),
		RequestId: provider.RequestID(ctx),
	}
}

func tenantFrom(c *pb.CallContext) provider.Tenant {
	return provider.NewTenant(c.GetTenantId(), c.GetSettings(), c.GetSecrets())
}

func moneyPB(m provider.Money) *pb.Money {
	return &pb.Money{Amount: m.Amount, Currency: m.Currency}
}

func moneyFrom(m *pb.Money) provider.Money {
	return provider.Money{Amount: m.GetAmount(), Currency: m.GetCurrency()}
}

// ---- info ----

// InfoPB converts a plugin description.
func InfoPB(i provider.Info) *pb.Info {
	out := &pb.Info{Name: i.Name, Version: i.Version}
	for _, c := range i.Capabilities {
		out.Capabilities = append(out.Capabilities, string(c))
	}
	for _, f := range i.Fields {
		out.Fields = append(out.Fields, &pb.Field{Name: f.Name, Secret: f.Secret, Required: f.Required, Doc: f.Doc})
	}
	if w := i.Webhook; w != nil {
		out.Webhook = webhookSpecPB(w)
	}
	return out
}

func webhookSpecPB(w *provider.WebhookSpec) *pb.WebhookSpec {
	m := &pb.WebhookSpec{Scheme: string(w.Scheme), Header: w.Header, SecretField: w.SecretField, ToleranceMs: w.Tolerance.Milliseconds(),
		DedupKey: w.DedupKey, Handshake: string(w.Handshake), VerifyTokenField: w.VerifyTokenField, VariantSetting: w.VariantSetting}
	for value, v := range w.Variants {
		if m.Variants == nil {
			m.Variants = make(map[string]*pb.WebhookSpec, len(w.Variants))
		}
		m.Variants[value] = webhookSpecPB(v)
	}
	return m
}

func webhookSpecFrom(m *pb.WebhookSpec) *provider.WebhookSpec {
	w := &provider.WebhookSpec{Scheme: provider.SignatureScheme(m.GetScheme()), Header: m.GetHeader(), SecretField: m.GetSecretField(), Tolerance: time.Duration(m.GetToleranceMs()) * time.Millisecond,
		DedupKey: m.GetDedupKey(), Handshake: provider.Handshake(m.GetHandshake()), VerifyTokenField: m.GetVerifyTokenField(), VariantSetting: m.GetVariantSetting()}
	for value, v := range m.GetVariants() {
		if w.Variants == nil {
			w.Variants = make(map[string]*provider.WebhookSpec, len(m.GetVariants()))
		}
		w.Variants[value] = webhookSpecFrom(v)
	}
	return w
}

// InfoFrom is the inverse of InfoPB.
func InfoFrom(m *pb.Info) provider.Info {
	out := provider.Info{Name: m.GetName(), Version: m.GetVersion()}
	for _, c := range m.GetCapabilities() {
		out.Capabilities = append(out.Capabilities, provider.Capability(c))
	}
	for _, f := range m.GetFields() {
		out.Fields = append(out.Fields, provider.Field{Name: f.GetName(), Secret: f.GetSecret(), Required: f.GetRequired(), Doc: f.GetDoc()})
	}
	if w := m.GetWebhook(); w != nil {
		out.Webhook = webhookSpecFrom(w)
	}
	return out
}

// ---- webhooks ----

func valuesPB(in map[string][]string) map[string]*pb.HeaderValues {
	if len(in) == 0 {
		return nil
	}
	out := make(map[string]*pb.HeaderValues, len(in))
	for k, v := range in {
		out[k] = &pb.HeaderValues{Values: v}
	}
	return out
}

func valuesFrom(in map[string]*pb.HeaderValues) map[string][]string {
	if len(in) == 0 {
		return nil
	}
	out := make(map[string][]string, len(in))
	for k, v := range in {
		out[k] = v.GetValues()
	}
	return out
}

func webhookPB(ctx context.Context, r provider.WebhookRequest) *pb.ParseWebhookRequest {
	return &pb.ParseWebhookRequest{Call: callPB(ctx, r.Tenant), Headers: valuesPB(r.Headers), Query: valuesPB(r.Query), Body: r.Body}
}

func webhookFrom(m *pb.ParseWebhookRequest) provider.WebhookRequest {
	return provider.WebhookRequest{Tenant: tenantFrom(m.GetCall()), Headers: valuesFrom(m.GetHeaders()), Query: valuesFrom(m.GetQuery()), Body: m.GetBody()}
}

func eventsPB(evs []provider.Event) *pb.ParseWebhookResponse {
	out := &pb.ParseWebhookResponse{}
	for _, e := range evs {
		out.Events = append(out.Events, &pb.Event{Id: e.ID, Type: e.Type, Subject: e.Subject, OccurredAtUnixMs: millis(e.OccurredAt), Data: e.Data})
	}
	return out
}

func eventsFrom(m *pb.ParseWebhookResponse) []provider.Event {
	var out []provider.Event
	for _, e := range m.GetEvents() {
		out = append(out, provider.Event{ID: e.GetId(), Type: e.GetType(), Subject: e.GetSubject(), OccurredAt: fromMillis(e.GetOccurredAtUnixMs()), Data: json.RawMessage(e.GetData())})
	}
	return out
}

// ---- payments ----

func createPaymentPB(ctx context.Context, r payments.CreateRequest) *pb.CreatePaymentRequest {
	return &pb.CreatePaymentRequest{
		Call: callPB(ctx, r.Tenant), IdempotencyKey: r.IdempotencyKey, PaymentId: r.PaymentID,
		Amount: moneyPB(r.Amount), Reference: r.Reference, Description: r.Description,
		Customer:  &pb.Customer{Email: r.Customer.Email, Phone: r.Customer.Phone, Name: r.Customer.Name},
		ReturnUrl: r.ReturnURL, Metadata: r.Metadata, ManualCapture: r.ManualCapture,
	}
}

func createPaymentFrom(m *pb.CreatePaymentRequest) payments.CreateRequest {
	c := m.GetCustomer()
	return payments.CreateRequest{
		Tenant: tenantFrom(m.GetCall()), IdempotencyKey: m.GetIdempotencyKey(), PaymentID: m.GetPaymentId(),
		Amount: moneyFrom(m.GetAmount()), Reference: m.GetReference(), Description: m.GetDescription(),
		Customer:  payments.Customer{Email: c.GetEmail(), Phone: c.GetPhone(), Name: c.GetName()},
		ReturnURL: m.GetReturnUrl(), Metadata: m.GetMetadata(), ManualCapture: m.GetManualCapture(),
	}
}

func paymentPB(p payments.Payment) *pb.Payment {
	return &pb.Payment{
		Id: p.ID, Status: string(p.Status), Amount: moneyPB(p.Amount), AmountRefunded: p.AmountRefunded,
		RedirectUrl: p.RedirectURL, ClientSecret: p.ClientSecret, Method: p.Method,
		FailureCode: p.FailureCode, FailureMessage: p.FailureMessage, CreatedAtUnixMs: millis(p.CreatedAt),
		RedirectForm: p.RedirectForm,
	}
}

func paymentFrom(m *pb.Payment) payments.Payment {
	return payments.Payment{
		ID: m.GetId(), Status: payments.Status(m.GetStatus()), Amount: moneyFrom(m.GetAmount()), AmountRefunded: m.GetAmountRefunded(),
		RedirectURL: m.GetRedirectUrl(), ClientSecret: m.GetClientSecret(), Method: m.GetMethod(),
		FailureCode: m.GetFailureCode(), FailureMessage: m.GetFailureMessage(), CreatedAt: fromMillis(m.GetCreatedAtUnixMs()),
		RedirectForm: m.GetRedirectForm(),
	}
}

func refundPB(r payments.Refund) *pb.Refund {
	out := &pb.Refund{Id: r.ID, Amount: moneyPB(r.Amount), Status: r.Status}
	if r.Payment != nil {
		out.Payment = paymentPB(*r.Payment)
	}
	return out
}

func refundFrom(m *pb.Refund) payments.Refund {
	out := payments.Refund{ID: m.GetId(), Amount: moneyFrom(m.GetAmount()), Status: m.GetStatus()}
	if m.GetPayment() != nil {
		p := paymentFrom(m.GetPayment())
		out.Payment = &p
	}
	return out
}

// ---- delivery ----

func locationPB(l *delivery.Location) *pb.Location {
	if l == nil {
		return nil
	}
	return &pb.Location{Lat: l.Lat, Lng: l.Lng}
}

func locationFrom(m *pb.Location) *delivery.Location {
	if m == nil {
		return nil
	}
	return &delivery.Location{Lat: m.GetLat(), Lng: m.GetLng()}
}

func stopPB(s delivery.Stop) *pb.Stop {
	a := s.Address
	return &pb.Stop{
		Address:  &pb.Address{Street: a.Street, Number: a.Number, City: a.City, Region: a.Region, Country: a.Country, PostalCode: a.PostalCode},
		Location: locationPB(s.Location),
		Contact:  &pb.Contact{Name: s.Contact.Name, Phone: s.Contact.Phone},
		Notes:    s.Notes,
	}
}

func stopFrom(m *pb.Stop) delivery.Stop {
	a := m.GetAddress()
	return delivery.Stop{
		Address:  delivery.Address{Street: a.GetStreet(), Number: a.GetNumber(), City: a.GetCity(), Region: a.GetRegion(), Country: a.GetCountry(), PostalCode: a.GetPostalCode()},
		Location: locationFrom(m.GetLocation()),
		Contact:  delivery.Contact{Name: m.GetContact().GetName(), Phone: m.GetContact().GetPhone()},
		Notes:    m.GetNotes(),
	}
}

func itemsPB(items []delivery.Item) []*pb.Item {
	var out []*pb.Item
	for _, it := range items {
		m := &pb.Item{Name: it.Name, Quantity: int32(it.Quantity), Size: it.Size}
		if it.Price != nil {
			m.Price = moneyPB(*it.Price)
		}
		out = append(out, m)
	}
	return out
}

func itemsFrom(ms []*pb.Item) []delivery.Item {
	var out []delivery.Item
	for _, m := range ms {
		it := delivery.Item{Name: m.GetName(), Quantity: int(m.GetQuantity()), Size: m.GetSize()}
		if m.GetPrice() != nil {
			p := moneyFrom(m.GetPrice())
			it.Price = &p
		}
		out = append(out, it)
	}
	return out
}

func quoteRequestPB(ctx context.Context, r delivery.QuoteRequest) *pb.QuoteRequest {
	return &pb.QuoteRequest{Call: callPB(ctx, r.Tenant), Pickup: stopPB(r.Pickup), Dropoff: stopPB(r.Dropoff), Items: itemsPB(r.Items), ReadyAtUnixMs: millis(r.ReadyAt), Reference: r.Reference}
}

func quoteRequestFrom(m *pb.QuoteRequest) delivery.QuoteRequest {
	return delivery.QuoteRequest{Tenant: tenantFrom(m.GetCall()), Pickup: stopFrom(m.GetPickup()), Dropoff: stopFrom(m.GetDropoff()), Items: itemsFrom(m.GetItems()), ReadyAt: fromMillis(m.GetReadyAtUnixMs()), Reference: m.GetReference()}
}

func quotePB(q delivery.Quote) *pb.Quote {
	return &pb.Quote{Id: q.ID, Fee: moneyPB(q.Fee), EtaMs: q.ETA.Milliseconds(), ExpiresAtUnixMs: millis(q.ExpiresAt)}
}

func quoteFrom(m *pb.Quote) delivery.Quote {
	return delivery.Quote{ID: m.GetId(), Fee: moneyFrom(m.GetFee()), ETA: time.Duration(m.GetEtaMs()) * time.Millisecond, ExpiresAt: fromMillis(m.GetExpiresAtUnixMs())}
}

func createShipmentPB(ctx context.Context, r delivery.CreateRequest) *pb.CreateShipmentRequest {
	return &pb.CreateShipmentRequest{
		Call: callPB(ctx, r.Tenant), IdempotencyKey: r.IdempotencyKey, DeliveryId: r.DeliveryID, QuoteId: r.QuoteID,
		Pickup: stopPB(r.Pickup), Dropoff: stopPB(r.Dropoff), Items: itemsPB(r.Items), ReadyAtUnixMs: millis(r.ReadyAt), Reference: r.Reference,
	}
}

func createShipmentFrom(m *pb.CreateShipmentRequest) delivery.CreateRequest {
	return delivery.CreateRequest{
		Tenant: tenantFrom(m.GetCall()), IdempotencyKey: m.GetIdempotencyKey(), DeliveryID: m.GetDeliveryId(), QuoteID: m.GetQuoteId(),
		Pickup: stopFrom(m.GetPickup()), Dropoff: stopFrom(m.GetDropoff()), Items: itemsFrom(m.GetItems()), ReadyAt: fromMillis(m.GetReadyAtUnixMs()), Reference: m.GetReference(),
	}
}

func shipmentPB(s delivery.Shipment) *pb.Shipment {
	out := &pb.Shipment{Id: s.ID, Status: string(s.Status), Fee: moneyPB(s.Fee), TrackingUrl: s.TrackingURL, EtaUnixMs: millis(s.ETA), Reason: s.Reason}
	if c := s.Courier; c != nil {
		out.Courier = &pb.Courier{Name: c.Name, Phone: c.Phone, Vehicle: c.Vehicle, Location: locationPB(c.Location)}
	}
	if p := s.Proof; p != nil {
		out.Proof = &pb.ProofOfDelivery{PhotoUrl: p.PhotoURL, SignatureUrl: p.SignatureURL, Pin: p.PIN}
	}
	return out
}

func shipmentFrom(m *pb.Shipment) delivery.Shipment {
	out := delivery.Shipment{ID: m.GetId(), Status: delivery.Status(m.GetStatus()), Fee: moneyFrom(m.GetFee()), TrackingURL: m.GetTrackingUrl(), ETA: fromMillis(m.GetEtaUnixMs()), Reason: m.GetReason()}
	if c := m.GetCourier(); c != nil {
		out.Courier = &delivery.Courier{Name: c.GetName(), Phone: c.GetPhone(), Vehicle: c.GetVehicle(), Location: locationFrom(c.GetLocation())}
	}
	if p := m.GetProof(); p != nil {
		out.Proof = &delivery.ProofOfDelivery{PhotoURL: p.GetPhotoUrl(), SignatureURL: p.GetSignatureUrl(), PIN: p.GetPin()}
	}
	return out
}

// ---- messaging ----

func sendPB(ctx context.Context, r messaging.SendRequest) *pb.SendRequest {
	out := &pb.SendRequest{
		Call: callPB(ctx, r.Tenant), IdempotencyKey: r.IdempotencyKey, MessageId: r.MessageID, Channel: string(r.Channel),
		To: r.To, Subject: r.Subject, Text: r.Text, Html: r.HTML,
	}
	if t := r.Template; t != nil {
		out.Template = &pb.Template{Name: t.Name, Language: t.Language, Params: t.Params}
	}
	for _, a := range r.Attachments {
		out.Attachments = append(out.Attachments, &pb.Attachment{Filename: a.Filename, ContentType: a.ContentType, Content: a.Content})
	}
	return out
}

func sendFrom(m *pb.SendRequest) messaging.SendRequest {
	out := messaging.SendRequest{
		Tenant: tenantFrom(m.GetCall()), IdempotencyKey: m.GetIdempotencyKey(), MessageID: m.GetMessageId(), Channel: messaging.Channel(m.GetChannel()),
		To: m.GetTo(), Subject: m.GetSubject(), Text: m.GetText(), HTML: m.GetHtml(),
	}
	if t := m.GetTemplate(); t != nil {
		out.Template = &messaging.Template{Name: t.GetName(), Language: t.GetLanguage(), Params: t.GetParams()}
	}
	for _, a := range m.GetAttachments() {
		out.Attachments = append(out.Attachments, messaging.Attachment{Filename: a.GetFilename(), ContentType: a.GetContentType(), Content: a.GetContent()})
	}
	return out
}

func receiptPB(r messaging.Receipt) *pb.Receipt {
	return &pb.Receipt{Id: r.ID, Status: string(r.Status)}
}

func receiptFrom(m *pb.Receipt) messaging.Receipt {
	return messaging.Receipt{ID: m.GetId(), Status: messaging.Status(m.GetStatus())}
}

// ---- subscriptions

func subscriptionRequestPB(ctx context.Context, r payments.SubscriptionRequest) *pb.CreateSubscriptionRequest {
	return &pb.CreateSubscriptionRequest{
		Call: callPB(ctx, r.Tenant), IdempotencyKey: r.IdempotencyKey, SubscriptionId: r.SubscriptionID,
		Plan:      &pb.Plan{PlanId: r.Plan.PlanID, Amount: moneyPB(r.Plan.Amount), Interval: string(r.Plan.Interval), IntervalCount: int32(r.Plan.IntervalCount)},
		Customer:  &pb.Customer{Email: r.Customer.Email, Phone: r.Customer.Phone, Name: r.Customer.Name},
		Reference: r.Reference, Description: r.Description, ReturnUrl: r.ReturnURL,
	}
}

func subscriptionRequestFrom(m *pb.CreateSubscriptionRequest) payments.SubscriptionRequest {
	c, pl := m.GetCustomer(), m.GetPlan()
	return payments.SubscriptionRequest{
		Tenant: tenantFrom(m.GetCall()), IdempotencyKey: m.GetIdempotencyKey(), SubscriptionID: m.GetSubscriptionId(),
		Plan:      payments.Plan{PlanID: pl.GetPlanId(), Amount: moneyFrom(pl.GetAmount()), Interval: payments.Interval(pl.GetInterval()), IntervalCount: int(pl.GetIntervalCount())},
		Customer:  payments.Customer{Email: c.GetEmail(), Phone: c.GetPhone(), Name: c.GetName()},
		Reference: m.GetReference(), Description: m.GetDescription(), ReturnURL: m.GetReturnUrl(),
	}
}

func subscriptionPB(s payments.Subscription) *pb.Subscription {
	m := &pb.Subscription{Id: s.ID, Status: string(s.Status), RedirectUrl: s.RedirectURL}
	if !s.CurrentPeriodEnd.IsZero() {
		m.CurrentPeriodEndUnixMs = s.CurrentPeriodEnd.UnixMilli()
	}
	return m
}

func subscriptionFrom(m *pb.Subscription) payments.Subscription {
	s := payments.Subscription{ID: m.GetId(), Status: payments.SubscriptionStatus(m.GetStatus()), RedirectURL: m.GetRedirectUrl()}
	if ms := m.GetCurrentPeriodEndUnixMs(); ms != 0 {
		s.CurrentPeriodEnd = time.UnixMilli(ms).UTC()
	}
	return s
}
