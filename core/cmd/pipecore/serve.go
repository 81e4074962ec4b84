package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/pipecore/pipecore/core/internal/admin"
	"github.com/pipecore/pipecore/core/internal/api"
	"github.com/pipecore/pipecore/core/internal/audit"
	"github.com/pipecore/pipecore/core/internal/bus"
	"github.com/pipecore/pipecore/core/internal/config"
	"github.com/pipecore/pipecore/core/internal/courier"
	"github.com/pipecore/pipecore/core/internal/dispatch"
	"github.com/pipecore/pipecore/core/internal/httpserver"
	"github.com/pipecore/pipecore/core/internal/logging"
	"github.com/pipecore/pipecore/core/internal/messenger"
	"github.com/pipecore/pipecore/core/internal/metrics"
	"github.com/pipecore/pipecore/core/internal/normalize"
	"github.com/pipecore/pipecore/core/internal/payment"
	"github.com/pipecore/pipecore/core/internal/pluginhost"
	"github.com/pipecore/pipecore/core/internal/ratelimit"
	"github.com/pipecore/pipecore/core/internal/store"
	"github.com/pipecore/pipecore/core/internal/subscription"
	"github.com/pipecore/pipecore/core/internal/tenant"
	"github.com/pipecore/pipecore/core/internal/vault"
	"github.com/pipecore/pipecore/core/internal/webhook"
	"github.com/pipecore/pipecore/sdk/provider"
)

func serveCmd() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the gateway",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return serve(ctx, path)
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "pipecore.yaml", "path of the YAML config file")
	return cmd
}

// configError is a problem the operator must fix in the config file; it
// exits with status 2.
func configError(err error) error { return &exitError{code: 2, err: err} }

// gateway is everything serve wires together.
type gateway struct {
	cfg     *config.Config
	log     *slog.Logger
	store   *store.Bolt
	plugins *pluginhost.Host
	tenants *tenant.Registry
	vault   *vault.Vault
	pepper  []byte
	disp    *dispatch.Dispatcher
	needed  []string // plugins some tenant enables
}

// boot loads the config, opens storage, launches the plugins tenants use
// and validates every tenant's provider settings against the plugins'
// declared fields. On error everything opened is closed again.
// Without withStore (config check) the data directory is left alone, so a
// running gateway's lock does not get in the way.
func boot(ctx context.Context, path string, withStore bool) (g *gateway, err error) {
	cfg, err := config.Load(path, os.LookupEnv)
	if err != nil {
		return nil, configError(err)
	}
	if err := messenger.CheckTenants(cfg.Tenants); err != nil {
		return nil, configError(fmt.Errorf("%s: %w", path, err))
	}
	log, err := logging.New(os.Stderr, cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		return nil, configError(err)
	}
	g = &gateway{cfg: cfg, log: log}
	opened := g
	defer func() {
		if err != nil {
			opened.close()
		}
	}()
	if withStore {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("create data dir: %w", err)
		}
		g.store, err = store.OpenBolt(filepath.Join(cfg.DataDir, "pipecore.db"), store.BoltOptions{Logger: log})
		if err != nil {
			return nil, err
		}
		if g.vault, g.pepper, err = openVault(cfg); err != nil {
			return nil, err
		}
	}
	g.plugins, err = pluginhost.New(pluginhost.Config{
		Dir: cfg.PluginsDir, Logger: log, StartTimeout: cfg.Plugins.StartTimeout.Duration(),
		PinsFile: filepath.Join(cfg.DataDir, "plugins.json"), WatchInterval: cfg.Plugins.Watch.Duration(),
	})
	if err != nil {
		return nil, err
	}
	if err := g.plugins.SetVersions(cfg.Versions()); err != nil {
		return nil, configError(err)
	}
	available := g.plugins.Available()
	want := func(name string) {
		if slices.Contains(available, name) && !slices.Contains(g.needed, name) {
			g.needed = append(g.needed, name)
		}
	}
	for _, t := range cfg.Tenants {
		for name, p := range t.Providers {
			if p.IsEnabled() {
				want(name)
			}
		}
	}
	if g.store != nil {
		recs, err := g.store.ListTenants(ctx)
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			for name, p := range r.Providers {
				if p.Enabled {
					want(name)
				}
			}
		}
	}
	slices.Sort(g.needed)
	catalog, err := g.plugins.Start(ctx, g.needed)
	if errors.Is(err, pluginhost.ErrNoMatch) {
		return nil, configError(err)
	}
	if err != nil {
		return nil, err
	}
	if err := validateProviders(cfg, catalog, available, log); err != nil {
		return nil, configError(err)
	}
	if !withStore {
		if g.tenants, err = tenant.New(cfg.Tenants); err != nil {
			return nil, configError(err)
		}
		return g, nil
	}
	// Tenants come from the config file and the operator records.
	if err := g.Reload(ctx); err != nil {
		return nil, configError(err)
	}
	return g, nil
}

// validateProviders checks tenant provider settings against the Info of
// the running plugins. A plugin whose binary exists but failed to launch
// (e.g. checksum mismatch) cannot be checked: its tenants are reported and
// its calls answer 503 until it runs.
func validateProviders(cfg *config.Config, catalog map[string]provider.Info, available []string, log *slog.Logger) error {
	check := *cfg
	check.Tenants = make(map[string]config.Tenant, len(cfg.Tenants))
	for id, t := range cfg.Tenants {
		ct := t
		ct.Providers = make(map[string]config.Provider, len(t.Providers))
		for name, p := range t.Providers {
			if _, running := catalog[name]; !running && slices.Contains(available, name) {
				log.Error("plugin not running; tenant settings for it are unchecked", "tenant", id, "provider", name)
				continue
			}
			ct.Providers[name] = p
		}
		if def, ok := ct.Defaults["payments"]; ok {
			if _, kept := ct.Providers[def]; !kept {
				ct.Defaults = nil
			}
		}
		check.Tenants[id] = ct
	}
	return check.ValidateProviders(catalog)
}

func (g *gateway) close() {
	if g.plugins != nil {
		g.plugins.Close()
	}
	if g.store != nil {
		_ = g.store.Close()
	}
}

func serve(ctx context.Context, path string) error {
	g, err := boot(ctx, path, true)
	if err != nil {
		return err
	}
	defer g.close()
	cfg, log := g.cfg, g.log
	servePprof(log)
	if err := g.syncEndpoints(ctx); err != nil {
		return err
	}

	// The pipeline runs until the HTTP server has drained.
	pipeCtx, stopPipeline := context.WithCancel(context.Background())
	defer stopPipeline()
	met := metrics.New()
	met.Registry().MustRegister(g.plugins)
	b := bus.NewInProcess(log)
	defer b.Close()
	// Normalisation and delivery give way to the webhook ingress while it
	// is busy; the inbox holds the backlog.
	pacer := bus.NewPacer(bus.PacerConfig{})

	schedule := dispatch.Schedule{0}
	for _, d := range cfg.Delivery.Schedule {
		schedule = append(schedule, d.Duration())
	}
	policy, err := cfg.DeliveryPolicy()
	if err != nil {
		return configError(err)
	}
	sender := dispatch.NewSender(dispatch.SenderConfig{
		Timeout: cfg.Delivery.Timeout.Duration(),
		// Every resolved address is checked at dial time (DNS rebinding).
		Dialer: policy.Dialer(&net.Dialer{KeepAlive: 30 * time.Second}, nil, dispatch.ErrBlockedAddress),
	})
	defer sender.Close()
	disp, err := dispatch.NewDispatcher(dispatch.DispatcherConfig{
		Store: g.store, Sender: sender, Schedule: schedule, Metrics: met, Logger: log,
		MaxInFlightPerEndpoint: cfg.Delivery.MaxInFlightPerEndpoint, Workers: cfg.Delivery.Workers, Pacer: pacer,
		DisableAfter: cfg.Delivery.DisableAfter.Duration(),
	})
	if err != nil {
		return err
	}
	g.disp = disp
	pay, err := payment.New(payment.Config{
		Store: g.store, Plugins: g.plugins, Audit: audit.NewRecorder(g.store, log), Logger: log,
		CallTimeout: cfg.Plugins.CallTimeout.Duration(), Notify: disp.Wake, PublicURL: cfg.PublicURL,
		Reconcile: payment.Reconcile{After: cfg.Payments.ReconcileAfter.Duration(), MaxAge: cfg.Payments.ReconcileMaxAge.Duration()},
	})
	if err != nil {
		return err
	}
	couriers, err := courier.New(courier.Config{
		Store: g.store, Plugins: g.plugins, Audit: audit.NewRecorder(g.store, log), Tenants: g.tenants, Logger: log,
		CallTimeout: cfg.Plugins.CallTimeout.Duration(), QuoteTimeout: cfg.Couriers.QuoteTimeout.Duration(),
		PollInterval: cfg.Couriers.PollInterval.Duration(), Notify: disp.Wake,
	})
	if err != nil {
		return err
	}
	templates, automations := map[string][]config.Template{}, map[string][]config.Automation{}
	for id, tc := range cfg.Tenants {
		templates[id], automations[id] = tc.Templates, tc.Automations
	}
	var msgSchedule []time.Duration
	for _, d := range cfg.Messages.Schedule {
		msgSchedule = append(msgSchedule, d.Duration())
	}
	msgs, err := messenger.New(messenger.Config{
		Store: g.store, Plugins: g.plugins, Audit: audit.NewRecorder(g.store, log), Tenants: g.tenants, Logger: log,
		Templates: templates, Automations: automations, CallTimeout: cfg.Plugins.CallTimeout.Duration(),
		Schedule: msgSchedule, Workers: cfg.Messages.Workers, Notify: disp.Wake,
	})
	if err != nil {
		return configError(err)
	}
	subs, err := subscription.New(subscription.Config{
		Store: g.store, Plugins: g.plugins, Audit: audit.NewRecorder(g.store, log), Logger: log,
		CallTimeout: cfg.Plugins.CallTimeout.Duration(), Notify: disp.Wake,
	})
	if err != nil {
		return err
	}
	norm := normalize.New(normalize.Config{
		Store: g.store, Plugins: g.plugins, Tenants: g.tenants, Bus: b, OutboxTopic: bus.TopicOutbox,
		Metrics: met, Logger: log, CallTimeout: cfg.Plugins.CallTimeout.Duration(),
		Linkers: []normalize.Linker{couriers, msgs, subs}, Workers: cfg.Webhooks.Workers, Pacer: pacer,
	})
	if err := b.Consume(pipeCtx, bus.TopicInbox, 1, norm.Notify); err != nil {
		return err
	}
	if err := b.Consume(pipeCtx, bus.TopicOutbox, 1, disp.Notify); err != nil {
		return err
	}
	var pipeline sync.WaitGroup
	pipeline.Add(3)
	go func() { defer pipeline.Done(); disp.Run(pipeCtx) }()
	go func() { defer pipeline.Done(); norm.Run(pipeCtx) }()
	go func() { defer pipeline.Done(); g.sweep(pipeCtx) }()
	// The background jobs of the capabilities: delivery tracking, the
	// message outbox and automations, payment reconciliation.
	pipeline.Add(4)
	go func() {
		defer pipeline.Done()
		couriers.Track(pipeCtx, min(time.Second, cfg.Couriers.PollInterval.Duration()))
	}()
	go func() { defer pipeline.Done(); msgs.Run(pipeCtx, 100*time.Millisecond) }()
	go func() { defer pipeline.Done(); msgs.RunAutomations(pipeCtx, 100*time.Millisecond) }()
	go func() {
		defer pipeline.Done()
		pay.RunReconcile(pipeCtx, g.tenants, min(time.Second, cfg.Payments.ReconcileAfter.Duration()))
	}()

	ingress := webhook.New(webhook.Config{
		Tenants: g.tenants, Plugins: g.plugins, Store: g.store, Bus: b, Topic: bus.TopicInbox, Gauge: pacer, Metrics: met,
		Logger: log, PublicURL: cfg.PublicURL, MaxBodyBytes: int(cfg.Webhooks.MaxBodyBytes),
	})
	adm, err := admin.New(admin.Config{TokenHash: cfg.Admin.TokenHash(), Store: g.store, Vault: g.vault, Gateway: g,
		Plugins: g.plugins, Logger: log, Pepper: g.pepper})
	if err != nil {
		return err
	}
	touch := &keyToucher{}
	pipeline.Add(1)
	go func() { defer pipeline.Done(); touch.run(pipeCtx, g.store) }()
	a, err := api.New(api.Config{
		Tenants: g.tenants, Payments: pay, Couriers: couriers, Messages: msgs, Subscriptions: subs, Store: g.store, Logger: log,
		MaxBodyBytes: int(cfg.HTTP.MaxBodyBytes), Ready: g.ready, PublicURL: cfg.PublicURL,
		Notifier: notifier{bus: b, disp: disp}, Webhooks: ingress, Metrics: met.Handler(),
		RateLimit: ratelimit.New(cfg.Limits.TenantRPS, cfg.Limits.TenantBurst), EndpointPolicy: &policy,
		Admin: adm, KeyUsed: touch.used,
	})
	if err != nil {
		return err
	}
	srv := httpserver.New(httpserver.Config{
		ReadTimeout: cfg.HTTP.ReadTimeout.Duration(), WriteTimeout: cfg.HTTP.WriteTimeout.Duration(),
		IdleTimeout: cfg.HTTP.IdleTimeout.Duration(), MaxBodyBytes: int(max(cfg.Webhooks.MaxBodyBytes, cfg.HTTP.MaxBodyBytes)) + 1,
		Logger: log,
	}, a.Handler())

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("pipecore serving", "version", version, "listen", ln.Addr().String(), "public_url", cfg.PublicURL,
		"data_dir", cfg.DataDir, "tenants", len(g.tenants.IDs()), "plugins", g.needed)

	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Warn("http shutdown", "error", err)
	}
	stopPipeline()
	pipeline.Wait()
	return nil
}

// notifier wakes the pipeline stages for the API's replays.
type notifier struct {
	bus  *bus.Bus
	disp *dispatch.Dispatcher
}

func (n notifier) InboxReady(tenantID, id string) { _ = n.bus.Publish(bus.TopicInbox, tenantID, id) }
func (n notifier) DeliveriesReady()               { n.disp.Wake() }

// syncEndpoints makes the store's config-declared endpoints match the
// config file: added, replaced, or removed. Endpoints created through the
// API are left alone.
func (g *gateway) syncEndpoints(ctx context.Context) error {
	now := time.Now().UTC()
	for _, id := range g.tenants.IDs() {
		declared := map[string]bool{}
		for _, e := range g.cfg.Tenants[id].Endpoints {
			declared[e.ID] = true
			secrets := []string{e.Secret}
			if e.PreviousSecret != "" {
				secrets = append(secrets, e.PreviousSecret)
			}
			ep := store.Endpoint{ID: e.ID, TenantID: id, URL: e.URL, Secrets: secrets, Types: e.Types,
				Enabled: e.IsEnabled(), Ordered: e.Ordered, Source: "config", CreatedAt: now, UpdatedAt: now}
			if old, err := g.store.GetEndpoint(ctx, id, e.ID); err == nil {
				ep.CreatedAt = old.CreatedAt
			}
			if err := g.store.PutEndpoint(ctx, ep); err != nil {
				return fmt.Errorf("store endpoint %s of tenant %s: %w", e.ID, id, err)
			}
		}
		eps, err := g.store.ListEndpoints(ctx, id)
		if err != nil {
			return err
		}
		for _, e := range eps {
			if e.Source == "config" && !declared[e.ID] {
				if err := g.store.DeleteEndpoint(ctx, id, e.ID); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// ready reports storage and plugin health for /readyz.
func (g *gateway) ready(ctx context.Context) (bool, any) {
	ok := true
	storeState := "ok"
	if err := g.store.Ping(ctx); err != nil {
		ok, storeState = false, "unavailable"
	}
	pluginsOK, plugins := g.plugins.Readiness()
	return ok && pluginsOK, map[string]any{"store": storeState, "plugins": plugins}
}

// sweep deletes idempotency records past their 24h retention and dedup
// keys past the configured retention, hourly.
func (g *gateway) sweep(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		now := time.Now()
		if n, err := g.store.SweepIdempotent(ctx, now.Add(-24*time.Hour)); err != nil {
			g.log.Warn("idempotency sweep", "error", err)
		} else if n > 0 {
			g.log.Debug("idempotency sweep", "deleted", n)
		}
		if n, err := g.store.SweepDedup(ctx, now.Add(-g.cfg.Webhooks.DedupRetention.Duration())); err != nil {
			g.log.Warn("dedup sweep", "error", err)
		} else if n > 0 {
			g.log.Debug("dedup sweep", "deleted", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
