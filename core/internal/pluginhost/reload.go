package pluginhost

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"time"
)

// Report is the outcome of routing one plugin at Start or Reload.
type Report struct {
	Name string
	// Routes has one entry per version constraint in use, the tenants
	// without a constraint first.
	Routes []Route
	// Refused lists the versions that were tried and not routed to.
	Refused []Refusal
	// Error, when set, says why some tenants have no version (no installed
	// version satisfies their constraint); their calls fail.
	Error string

	err error
}

// OK reports whether every version tried was routed or passed over for a
// newer one, and every tenant has a version.
func (r Report) OK() bool { return r.Error == "" && len(r.Refused) == 0 }

// Route says which version serves a group of tenants.
type Route struct {
	// Constraint is the group's version constraint; "" for tenants
	// without one (and tenants created through the admin API).
	Constraint string
	// Tenants lists the group's tenants; nil for the tenants without a
	// constraint.
	Tenants []string
	// From and To are the versions before and after; From is "" at
	// Start, To is "" when no version serves the group.
	From, To string
	// Healthy is false when To is not running yet (it is retried with
	// backoff).
	Healthy bool
}

// Refusal is a version that was tried and refused.
type Refusal struct {
	Version, Path, Error string
}

// candidate is one binary with the version it has or reported.
type candidate struct {
	bin     Binary
	version string
}

// Reload rediscovers the plugins directory and the registered pins, then
// routes the named plugins again (every started plugin when names is
// empty): for each group of tenants, the newest version satisfying their
// constraint is started and health-checked; once healthy, new calls go to
// it, while the version it replaces finishes its in-flight calls (at most
// DrainTimeout) and is stopped. A version that fails to start or its
// health check is refused and reported: traffic stays where it was. A
// name no binary provides is reported with ErrUnknown in Error.
func (h *Host) Reload(ctx context.Context, names []string) ([]Report, error) {
	h.changeMu.Lock()
	defer h.changeMu.Unlock()
	if h.cfg.Dir != "" {
		bins, err := Discover(h.cfg.Dir)
		if err != nil {
			return nil, err
		}
		pins, err := loadPins(h.cfg.PinsFile)
		if err != nil {
			return nil, err
		}
		h.mu.Lock()
		h.discovered = bins
		if h.cfg.PinsFile != "" {
			h.pinned = pins
		}
		h.mu.Unlock()
	}
	h.mu.RLock()
	if len(names) == 0 {
		names = slices.Sorted(maps.Keys(h.started))
	}
	h.mu.RUnlock()
	var out []Report
	for _, name := range names {
		h.mu.RLock()
		started := h.started[name]
		h.mu.RUnlock()
		switch {
		case len(h.binariesOf(name)) == 0 && !started:
			out = append(out, Report{Name: name, Error: fmt.Sprintf("%v: %q (binaries: %s)", ErrUnknown, name, plural(h.Available()))})
		case !started:
			out = append(out, Report{Name: name, Error: "no tenant uses it: nothing to reload"})
		default:
			out = append(out, h.resolve(ctx, name))
		}
	}
	return out, ctx.Err()
}

// candidates lists name's binaries newest first, one per version, learning
// the version of a binary whose file name has none by launching it.
func (h *Host) candidates(ctx context.Context, name string, tried map[string]bool) []candidate {
	var out []candidate
	for _, b := range h.binariesOf(name) {
		v := b.Version
		if v == "" {
			h.mu.RLock()
			v = h.learned[b.id()]
			h.mu.RUnlock()
		}
		if v == "" && b.Checksum != nil {
			s, created := h.ensure(b)
			if created {
				tried[b.id()] = true
			}
			if s.waitFirst(ctx) {
				v = s.version()
				h.mu.Lock()
				h.learned[b.id()] = v
				h.mu.Unlock()
			}
		}
		out = append(out, candidate{bin: b, version: v})
	}
	sort.SliceStable(out, func(i, j int) bool { return newer(out[i].version, out[j].version) })
	var dedup []candidate
	for _, c := range out {
		dup := slices.ContainsFunc(dedup, func(d candidate) bool { return c.version != "" && sameVersion(c.version, d.version) })
		if dup {
			h.cfg.Logger.Warn("two binaries claim one plugin version; the first is used", "plugin", name, "plugin_version", c.version, "ignored", c.bin.Path)
			continue
		}
		dedup = append(dedup, c)
	}
	return dedup
}

// ensure returns the live supervisor of b, starting one if there is none.
func (h *Host) ensure(b Binary) (*supervisor, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s, ok := h.sups[b.id()]; ok {
		return s, false
	}
	s := newSupervisor(h.ctx, h.cfg, b)
	h.sups[b.id()] = s
	s.start(&h.wg)
	return s, true
}

// settle waits SettleTime and reports whether s is still healthy and
// answers its health check.
func (h *Host) settle(ctx context.Context, s *supervisor) bool {
	if !sleep(ctx, h.cfg.SettleTime) {
		return false
	}
	s.mu.Lock()
	inst := s.inst
	s.mu.Unlock()
	if inst == nil {
		return false
	}
	pctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	return inst.Ping(pctx) == nil
}

// resolve routes one plugin: see Reload.
func (h *Host) resolve(ctx context.Context, name string) Report {
	rep := Report{Name: name}
	tried := map[string]bool{} // supervisors created by this resolve
	cands := h.candidates(ctx, name, tried)

	h.mu.RLock()
	groups := map[string][]string{"": nil} // constraint → tenants
	byTenant := map[string]Constraint{}
	for tid, c := range h.constraints[name] {
		groups[c.String()] = append(groups[c.String()], tid)
		byTenant[tid] = c
	}
	h.mu.RUnlock()
	old := (*h.routes.Load())[name]
	current := func(tenants []string) *supervisor {
		if old == nil {
			return nil
		}
		for _, tid := range tenants {
			if s, ok := old.tenants[tid]; ok {
				return s
			}
		}
		return old.def
	}

	next := &nameRoute{tenants: map[string]*supervisor{}, groups: map[string]string{}}
	refused := map[string]Refusal{}
	var problems []error
	for _, raw := range slices.Sorted(maps.Keys(groups)) {
		tenants := slices.Sorted(slices.Values(groups[raw]))
		c, _ := ParseConstraint(raw)
		cur := current(tenants)
		var matching []candidate
		for _, cand := range cands {
			if c.Allows(cand.version) {
				matching = append(matching, cand)
			}
		}
		var chosen *supervisor
		for _, cand := range matching {
			if cur != nil && cur.bin.id() == cand.bin.id() && cur.healthy() {
				chosen = cur
				break
			}
			s, created := h.ensure(cand.bin)
			if created {
				tried[cand.bin.id()] = true
			}
			fresh := tried[cand.bin.id()]
			ok := s.waitFirst(ctx)
			if ok && fresh && cur != nil && cur != s {
				ok = h.settle(ctx, s)
			}
			if ok {
				chosen = s
				break
			}
			if fresh {
				refused[cand.bin.id()] = Refusal{Version: s.version(), Path: cand.bin.Path, Error: s.lastError()}
				if refused[cand.bin.id()].Error == "" {
					refused[cand.bin.id()] = Refusal{Version: s.version(), Path: cand.bin.Path, Error: "not healthy after start"}
				}
			}
		}
		if chosen == nil {
			switch {
			case cur != nil && cur.ctx.Err() == nil:
				chosen = cur // nothing better: traffic stays
			case len(matching) > 0:
				chosen, _ = h.ensure(matching[0].bin) // retried with backoff
				delete(refused, matching[0].bin.id())
			default:
				var installed []string
				for _, cand := range cands {
					installed = append(installed, cand.version)
				}
				problems = append(problems, fmt.Errorf("%w: no installed version of %s satisfies %q for tenants %s (installed: %s)",
					ErrNoMatch, name, raw, plural(tenants), plural(installed)))
			}
		}
		route := Route{Constraint: raw, Tenants: tenants}
		if cur != nil {
			route.From = cur.version()
		}
		if chosen != nil {
			route.To, route.Healthy = chosen.version(), chosen.healthy()
		}
		rep.Routes = append(rep.Routes, route)
		if raw == "" {
			next.def = chosen
			continue
		}
		for _, tid := range tenants {
			next.tenants[tid], next.groups[tid] = chosen, raw
		}
	}
	for _, id := range slices.Sorted(maps.Keys(refused)) {
		rep.Refused = append(rep.Refused, refused[id])
	}
	if len(problems) > 0 {
		rep.err = errors.Join(problems...)
		rep.Error = strings.ReplaceAll(rep.err.Error(), "\n", "; ")
	}

	// Publish the new routes, then retire what no route uses any more.
	keep := map[*supervisor]bool{}
	for _, s := range next.all() {
		keep[s] = true
	}
	h.mu.Lock()
	t := maps.Clone(*h.routes.Load())
	t[name] = next
	h.routes.Store(&t)
	var retire []*supervisor
	var rejected []Status
	for id, s := range h.sups {
		if s.bin.Name != name || keep[s] {
			continue
		}
		delete(h.sups, id)
		if _, ok := refused[id]; ok {
			st := s.status()
			st.State, st.PID, st.Serving = StateRejected, 0, false
			rejected = append(rejected, st)
		}
		h.draining[s] = true
		retire = append(retire, s)
	}
	h.rejected[name] = rejected
	h.mu.Unlock()
	for _, s := range retire {
		drained := s.beginRetire()
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			clean := s.retire(drained, h.cfg.DrainTimeout)
			h.mu.Lock()
			delete(h.draining, s)
			h.mu.Unlock()
			s.logger().Info("plugin version stopped", "drained", clean)
		}()
	}
	h.logReport(rep)
	return rep
}

func (h *Host) logReport(rep Report) {
	log := h.cfg.Logger.With("plugin", rep.Name)
	for _, r := range rep.Routes {
		tenants := "tenants without a version constraint"
		if r.Tenants != nil {
			tenants = plural(r.Tenants)
		}
		switch {
		case r.From == "" && r.To != "":
			log.Info("plugin version serving", "plugin_version", r.To, "constraint", r.Constraint, "tenants", tenants, "healthy", r.Healthy)
		case r.From != r.To:
			log.Info("plugin version swapped", "from", r.From, "to", r.To, "constraint", r.Constraint, "tenants", tenants, "healthy", r.Healthy)
		}
	}
	for _, f := range rep.Refused {
		serving := "none"
		if len(rep.Routes) > 0 && rep.Routes[0].To != "" {
			serving = rep.Routes[0].To
		}
		log.Error("plugin version refused; traffic stays on the serving version", "plugin_version", f.Version, "path", f.Path, "error", f.Error, "serving", serving)
	}
	if rep.Error != "" {
		log.Error("plugin not routed for some tenants", "error", rep.Error)
	}
}

// Register pins the binary at path (an absolute path on the gateway's
// host) as a build of the named plugin, after checking that its SHA-256 is
// sum. The pin is kept in PinsFile and the binary joins the catalog: the
// next Reload of the plugin may route tenants to it. Registering the same
// content again changes nothing; a file name version already installed
// with other content is refused (a version is immutable).
func (h *Host) Register(name, path string, sum []byte) (Binary, error) {
	h.changeMu.Lock()
	defer h.changeMu.Unlock()
	b, err := checkRegistration(name, path, sum)
	if err != nil {
		return Binary{}, err
	}
	for _, o := range h.binariesOf(name) {
		if bytes.Equal(o.Checksum, b.Checksum) {
			return o, nil
		}
		v := o.Version
		if v == "" {
			h.mu.RLock()
			v = h.learned[o.id()]
			h.mu.RUnlock()
		}
		if b.Version != "" && sameVersion(v, b.Version) {
			return Binary{}, fmt.Errorf("%w: %s %s is already installed from %s with another SHA-256; a version is immutable: build a new version", ErrInvalid, name, b.Version, o.Path)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	pins := append(slices.Clone(h.pinned), b)
	if err := savePins(h.cfg.PinsFile, pins, time.Now(), readPinsJSON(h.cfg.PinsFile)); err != nil {
		return Binary{}, err
	}
	h.pinned = pins
	return b, nil
}

// watch reloads the started plugins when the plugins directory or the pins
// change.
func (h *Host) watch(ctx context.Context) {
	last := h.fingerprint()
	t := time.NewTicker(h.cfg.WatchInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fp := h.fingerprint()
		if bytes.Equal(fp, last) {
			continue
		}
		last = fp
		h.cfg.Logger.Info("plugins directory changed; reloading plugins", "dir", h.cfg.Dir)
		rctx, cancel := context.WithTimeout(ctx, 2*h.cfg.StartTimeout+time.Minute)
		reps, err := h.Reload(rctx, nil)
		cancel()
		if err != nil {
			h.cfg.Logger.Error("plugins reload failed", "error", err)
			continue
		}
		for _, r := range reps {
			if !r.OK() {
				h.cfg.Logger.Error("plugin reload incomplete", "plugin", r.Name, "refused", len(r.Refused), "error", r.Error)
			}
		}
	}
}

// fingerprint summarizes the plugins directory (names, sizes, times) and
// the pins file.
func (h *Host) fingerprint() []byte {
	sum := sha256.New()
	if entries, err := os.ReadDir(h.cfg.Dir); err == nil {
		for _, e := range entries {
			var info fs.FileInfo
			if info, err = e.Info(); err == nil {
				fmt.Fprintf(sum, "%s %d %d\n", e.Name(), info.Size(), info.ModTime().UnixNano())
			}
		}
	}
	if b, err := os.ReadFile(h.cfg.PinsFile); err == nil {
		sum.Write(b)
	}
	return sum.Sum(nil)
}
