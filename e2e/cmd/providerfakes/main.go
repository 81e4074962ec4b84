// Command providerfakes runs local fakes of the delivery and messaging
// providers for the demo gateway of `make run`: Uber Direct, Rappi and
// PedidosYa, Meta's WhatsApp Cloud API and SendGrid, the same fakes the
// end-to-end tests use (plugins/*/…fake).
//
// Each fake listens on a random 127.0.0.1 port behind a reverse proxy on a
// fixed one (127.0.0.1:12101 to 12105 with the default -port 12101; -port 0
// picks free ports). Their webhooks are signed with the demo secrets and
// posted to {gateway}/webhooks/{plugin}/{tenant}. The proxies watch the
// answers to bookings and sends, and every -advance (0 turns it off) move
// each booked delivery one step (pending → assigned → picked_up →
// delivered) and each sent message one status (WhatsApp sent, delivered,
// read; email delivered, open), through the fake's webhook, so the gateway
// announces delivery.*, message.* and email.* events.
//
// Once every fake listens, it writes -env-file (mode 0600): the base URLs,
// the credentials the fakes accept, the webhook secrets and SendGrid's
// verification key, as shell assignments for scripts/run-demo.sh and the
// ${VARIABLES} of examples/pipecore.demo.yaml. A webhook secret already set
// in the environment is used instead of its demo value. Secrets are never
// logged. SIGINT or SIGTERM stops everything and removes the env file.
//
//	cd e2e && go run ./cmd/providerfakes -gateway http://127.0.0.1:8080 -env-file ../data/providerfakes.env
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pipecore/pipecore/plugins/email/sendgridfake"
	"github.com/pipecore/pipecore/plugins/pedidosya/pedidosyafake"
	"github.com/pipecore/pipecore/plugins/rappi/rappifake"
	"github.com/pipecore/pipecore/plugins/uberdirect/uberfake"
	"github.com/pipecore/pipecore/plugins/whatsapp/metafake"
)

func main() {
	log.SetFlags(log.Ltime)
	log.SetPrefix("providerfakes: ")
	if err := run(); err != nil {
		log.Print(err)
		os.Exit(1)
	}
}

// fake is one provider fake behind its proxy.
type fake struct {
	plugin string // the PipeCore plugin it stands for
	url    string // the fake's own URL
	// created returns the provider's id of the delivery or message that a
	// 2xx answer to req created, or "" when req created nothing.
	created func(req *http.Request, resp *http.Response, body []byte) string
	// step moves id one step and says whether there is another one.
	step func(id string, n int) (status string, more bool, err error)
}

func run() error {
	gateway := flag.String("gateway", "http://127.0.0.1:8080", "the gateway's public URL, where webhooks go")
	tenant := flag.String("tenant", "demo", "the tenant in the webhook URLs")
	port := flag.Int("port", 12101, "first of the five fixed proxy ports on 127.0.0.1 (0: free ports)")
	envFile := flag.String("env-file", "", "write the fakes' URLs, credentials and webhook secrets here once they listen")
	advance := flag.Duration("advance", 5*time.Second, "move booked deliveries and sent messages one step this often (0: never)")
	flag.Parse()
	if u, err := url.Parse(*gateway); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("-gateway %q is not an http(s) URL", *gateway)
	}
	if *port < 0 || *port > 65535-4 {
		return fmt.Errorf("-port %d is out of range", *port)
	}

	secrets := map[string]string{
		"UBERDIRECT_WEBHOOK_SIGNING_KEY": "demo-uber-signing-key",
		"RAPPI_WEBHOOK_SECRET":           "demo-rappi-webhook-secret",
		"PEDIDOSYA_WEBHOOK_KEY":          "demo-pedidosya-authorization-key",
		"WHATSAPP_APP_SECRET":            "demo-meta-app-secret",
		"WHATSAPP_VERIFY_TOKEN":          "demo-meta-verify-token",
	}
	for k := range secrets {
		if v := os.Getenv(k); v != "" {
			secrets[k] = v
		}
	}
	hook := func(plugin string) string {
		return strings.TrimRight(*gateway, "/") + "/webhooks/" + plugin + "/" + url.PathEscape(*tenant)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	uber, rappi, pya := uberfake.Start(), rappifake.Start(), pedidosyafake.Start()
	meta, sendgrid := metafake.Start(), sendgridfake.Start()
	var servers []*http.Server
	var wg sync.WaitGroup // the goroutines of follow
	defer func() {
		stop()
		for _, s := range servers {
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = s.Shutdown(sctx)
			cancel()
		}
		// Closing the fakes aborts the webhooks in flight.
		uber.Close()
		rappi.Close()
		pya.Close()
		meta.Close()
		sendgrid.Close()
		wg.Wait()
	}()
	uber.SetWebhook(hook("uberdirect"), secrets["UBERDIRECT_WEBHOOK_SIGNING_KEY"])
	rappi.SetWebhook(hook("rappi"), secrets["RAPPI_WEBHOOK_SECRET"])
	pya.SetWebhook(hook("pedidosya"), secrets["PEDIDOSYA_WEBHOOK_KEY"])
	meta.SetWebhook(hook("whatsapp"), secrets["WHATSAPP_APP_SECRET"])
	sendgrid.SetWebhook(hook("email"))

	post := func(path string) func(*http.Request, *http.Response, []byte) string {
		return func(req *http.Request, _ *http.Response, body []byte) string {
			if req.Method != http.MethodPost || req.URL.Path != path {
				return ""
			}
			return jsonID(body)
		}
	}
	deliverySteps := func(advance func(string) (string, error), final string) func(string, int) (string, bool, error) {
		return func(id string, _ int) (string, bool, error) {
			st, err := advance(id)
			return st, st != "" && !strings.EqualFold(st, final), err
		}
	}
	statusSteps := func(send func(id, status string) error, statuses ...string) func(string, int) (string, bool, error) {
		return func(id string, n int) (string, bool, error) {
			return statuses[n], n+1 < len(statuses), send(id, statuses[n])
		}
	}
	fakes := []*fake{
		{plugin: "uberdirect", url: uber.URL(),
			created: post("/v1/customers/" + uberfake.CustomerID + "/deliveries"),
			step:    deliverySteps(uber.Advance, "delivered")},
		{plugin: "rappi", url: rappi.URL(),
			created: post("/cargo/v1/deliveries"),
			step:    deliverySteps(rappi.Advance, "delivered")},
		{plugin: "pedidosya", url: pya.URL(),
			created: post("/v3/shippings"),
			step:    deliverySteps(pya.Advance, "COMPLETED")},
		{plugin: "whatsapp", url: meta.URL(),
			created: func(req *http.Request, _ *http.Response, body []byte) string {
				if req.Method != http.MethodPost || !strings.HasSuffix(req.URL.Path, "/"+metafake.PhoneNumberID+"/messages") {
					return ""
				}
				var a struct {
					Messages []struct{ ID string } `json:"messages"`
				}
				if json.Unmarshal(body, &a) != nil || len(a.Messages) == 0 {
					return ""
				}
				return a.Messages[0].ID
			},
			step: statusSteps(meta.Status, "sent", "delivered", "read")},
		{plugin: "email", url: sendgrid.URL(),
			created: func(req *http.Request, resp *http.Response, _ []byte) string {
				if req.Method != http.MethodPost || req.URL.Path != "/v3/mail/send" {
					return ""
				}
				return resp.Header.Get("X-Message-Id")
			},
			step: statusSteps(func(id, ev string) error { return sendgrid.Event(id, ev, nil) }, "delivered", "open")},
	}

	urls := map[string]string{}
	for i, f := range fakes {
		addr := "127.0.0.1:0"
		if *port != 0 {
			addr = fmt.Sprintf("127.0.0.1:%d", *port+i)
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("%s: %w", f.plugin, err)
		}
		urls[f.plugin] = "http://" + ln.Addr().String()
		s := &http.Server{Handler: f.proxy(ctx, &wg, *advance), ReadHeaderTimeout: 10 * time.Second}
		servers = append(servers, s)
		go func() {
			if err := s.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				log.Printf("%s: %v", f.plugin, err)
				stop()
			}
		}()
		log.Printf("%-10s fake on %s, webhooks to %s", f.plugin, urls[f.plugin], hook(f.plugin))
	}

	if *envFile != "" {
		env := []string{
			"UBERDIRECT_BASE_URL=" + urls["uberdirect"],
			"UBERDIRECT_CUSTOMER_ID=" + uberfake.CustomerID,
			"UBERDIRECT_CLIENT_ID=" + uberfake.ClientID,
			"UBERDIRECT_CLIENT_SECRET=" + uberfake.ClientSecret,
			"RAPPI_BASE_URL=" + urls["rappi"],
			"RAPPI_CLIENT_ID=" + rappifake.ClientID,
			"RAPPI_CLIENT_SECRET=" + rappifake.ClientSecret,
			"PEDIDOSYA_BASE_URL=" + urls["pedidosya"],
			"PEDIDOSYA_API_TOKEN=" + pedidosyafake.Token,
			"WHATSAPP_BASE_URL=" + urls["whatsapp"],
			"WHATSAPP_PHONE_NUMBER_ID=" + metafake.PhoneNumberID,
			"WHATSAPP_ACCESS_TOKEN=" + metafake.AccessToken,
			"SENDGRID_BASE_URL=" + urls["email"],
			"SENDGRID_API_KEY=" + sendgridfake.APIKey,
			"SENDGRID_WEBHOOK_PUBLIC_KEY=" + sendgrid.PublicKey(),
		}
		for _, k := range []string{"UBERDIRECT_WEBHOOK_SIGNING_KEY", "RAPPI_WEBHOOK_SECRET", "PEDIDOSYA_WEBHOOK_KEY", "WHATSAPP_APP_SECRET", "WHATSAPP_VERIFY_TOKEN"} {
			env = append(env, k+"="+secrets[k])
		}
		if err := writeEnv(*envFile, env); err != nil {
			return err
		}
		defer os.Remove(*envFile)
		log.Printf("wrote %s", *envFile)
	}
	if *advance > 0 {
		log.Printf("booked deliveries and sent messages move one step every %s", *advance)
	}

	<-ctx.Done()
	log.Print("stopping")
	return nil
}

// proxy forwards to the fake and, when advance > 0, starts moving what a
// forwarded request created.
func (f *fake) proxy(ctx context.Context, wg *sync.WaitGroup, advance time.Duration) http.Handler {
	target, _ := url.Parse(f.url)
	var mu sync.Mutex
	seen := map[string]bool{} // a repeated create answers the same id
	return &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target) },
		ModifyResponse: func(resp *http.Response) error {
			if advance <= 0 || resp.StatusCode/100 != 2 {
				return nil
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			resp.Body = io.NopCloser(bytes.NewReader(body))
			if err != nil {
				return err
			}
			id := f.created(resp.Request, resp, body)
			if id == "" {
				return nil
			}
			mu.Lock()
			again := seen[id]
			seen[id] = true
			mu.Unlock()
			if !again {
				wg.Add(1)
				go func() {
					defer wg.Done()
					f.follow(ctx, id, advance)
				}()
			}
			return nil
		},
		ErrorLog: log.Default(),
	}
}

// follow moves id one step every interval until it is done or ctx ends.
func (f *fake) follow(ctx context.Context, id string, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		status, more, err := f.step(id, n)
		switch {
		case err != nil && status == "":
			log.Printf("%s: %s stops: %v", f.plugin, id, err) // cancelled, or gone
			return
		case err != nil:
			log.Printf("%s: %s → %s, but the webhook failed: %v", f.plugin, id, status, err)
		default:
			log.Printf("%s: %s → %s", f.plugin, id, status)
		}
		if !more {
			return
		}
	}
}

// jsonID is the "id" of a JSON object, or "".
func jsonID(body []byte) string {
	var v struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(body, &v)
	return v.ID
}

// writeEnv writes lines of NAME=value as single-quoted shell assignments,
// readable by the owner only, replacing path atomically.
func writeEnv(path string, lines []string) error {
	var b strings.Builder
	b.WriteString("# Written by providerfakes; removed when it stops.\n")
	for _, l := range lines {
		k, v, _ := strings.Cut(l, "=")
		if strings.ContainsAny(v, "'\n") {
			return fmt.Errorf("the value of %s contains a quote or a line break", k)
		}
		fmt.Fprintf(&b, "%s='%s'\n", k, v)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".providerfakes-*.env")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(b.String()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
