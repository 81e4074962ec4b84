package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// adminClient talks to the admin API of a running gateway.
type adminClient struct {
	addr, token string
	asJSON      bool
	out         io.Writer
}

func addAdminFlags(cmd *cobra.Command, c *adminClient) {
	def := os.Getenv("PIPECORE_ADDR")
	if def == "" {
		def = "http://127.0.0.1:8080"
	}
	cmd.PersistentFlags().StringVar(&c.addr, "addr", def, "gateway address (env PIPECORE_ADDR)")
	cmd.PersistentFlags().BoolVar(&c.asJSON, "json", false, "print the API's JSON instead of a table")
}

// call sends one request; the operator token comes from
// PIPECORE_ADMIN_TOKEN. It returns the decoded JSON answer.
func (c *adminClient) call(method, path string, body any) (map[string]any, error) {
	c.token = os.Getenv("PIPECORE_ADMIN_TOKEN")
	if c.token == "" {
		return nil, errors.New("set PIPECORE_ADMIN_TOKEN to the operator token (admin.token in the gateway config)")
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, strings.TrimRight(c.addr, "/")+"/admin/v1"+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	client := &http.Client{Timeout: 2 * time.Minute}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the gateway at %s: %w", c.addr, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	var out map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			return nil, fmt.Errorf("gateway answered %d with a body that is not JSON", resp.StatusCode)
		}
	}
	if resp.StatusCode >= 300 {
		e, _ := out["error"].(map[string]any)
		return out, fmt.Errorf("%d %v: %v", resp.StatusCode, e["code"], e["message"])
	}
	return out, nil
}

// print shows v as JSON (--json) or as a table of the given columns.
func (c *adminClient) print(v map[string]any, columns ...string) error {
	if c.asJSON || len(columns) == 0 {
		enc := json.NewEncoder(c.out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	rows, ok := v["data"].([]any)
	if !ok {
		rows = []any{v}
	}
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.ToUpper(strings.Join(columns, "\t")))
	for _, r := range rows {
		m, _ := r.(map[string]any)
		cells := make([]string, len(columns))
		for i, col := range columns {
			cells[i] = cell(m[col])
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

func cell(v any) string {
	switch x := v.(type) {
	case nil:
		return "-"
	case []any:
		parts := make([]string, len(x))
		for i, p := range x {
			parts[i] = cell(p)
		}
		return strings.Join(parts, ",")
	case float64:
		return fmt.Sprint(int64(x))
	}
	return fmt.Sprint(v)
}

func adminCmds() []*cobra.Command {
	c := &adminClient{}
	run := func(f func(args []string) (map[string]any, []string, error)) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			c.out = cmd.OutOrStdout()
			v, cols, err := f(args)
			if err != nil {
				return err
			}
			if v == nil {
				return nil
			}
			return c.print(v, cols...)
		}
	}
	esc := url.PathEscape

	tenants := &cobra.Command{Use: "tenants", Short: "Manage tenants through the admin API"}
	var defaults []string
	create := &cobra.Command{Use: "create ID", Short: "Create a tenant", Args: cobra.ExactArgs(1), RunE: run(func(a []string) (map[string]any, []string, error) {
		d, err := pairs(defaults)
		if err != nil {
			return nil, nil, err
		}
		v, err := c.call("POST", "/tenants", map[string]any{"id": a[0], "defaults": d})
		return v, []string{"id", "source", "disabled"}, err
	})}
	create.Flags().StringArrayVar(&defaults, "default", nil, "capability=provider, e.g. payments=stripe")
	tenants.AddCommand(
		&cobra.Command{Use: "list", Short: "List tenants", Args: cobra.NoArgs, RunE: run(func([]string) (map[string]any, []string, error) {
			v, err := c.call("GET", "/tenants", nil)
			return v, []string{"id", "source", "disabled", "providers", "api_keys"}, err
		})},
		&cobra.Command{Use: "show ID", Short: "Show a tenant", Args: cobra.ExactArgs(1), RunE: run(func(a []string) (map[string]any, []string, error) {
			v, err := c.call("GET", "/tenants/"+esc(a[0]), nil)
			return v, []string{"id", "source", "disabled", "providers", "api_keys"}, err
		})},
		create,
		&cobra.Command{Use: "disable ID", Short: "Disable a tenant (its keys and webhooks stop working)", Args: cobra.ExactArgs(1), RunE: run(func(a []string) (map[string]any, []string, error) {
			v, err := c.call("POST", "/tenants/"+esc(a[0])+"/disable", nil)
			return v, []string{"id", "disabled"}, err
		})},
		&cobra.Command{Use: "enable ID", Short: "Enable a disabled tenant", Args: cobra.ExactArgs(1), RunE: run(func(a []string) (map[string]any, []string, error) {
			v, err := c.call("POST", "/tenants/"+esc(a[0])+"/enable", nil)
			return v, []string{"id", "disabled"}, err
		})},
		&cobra.Command{Use: "token-secret ID", Short: "Create a signing secret for short-lived tenant tokens (shown once)", Args: cobra.ExactArgs(1), RunE: run(func(a []string) (map[string]any, []string, error) {
			v, err := c.call("POST", "/tenants/"+esc(a[0])+"/token-secrets", nil)
			return v, []string{"kid", "secret", "max_ttl_seconds"}, err
		})},
	)

	keys := &cobra.Command{Use: "keys", Short: "Manage tenant API keys, and rotate the master key"}
	keys.AddCommand(
		&cobra.Command{Use: "create TENANT", Short: "Create an API key (shown once)", Args: cobra.ExactArgs(1), RunE: run(func(a []string) (map[string]any, []string, error) {
			v, err := c.call("POST", "/tenants/"+esc(a[0])+"/keys", nil)
			return v, []string{"id", "key", "created_at"}, err
		})},
		&cobra.Command{Use: "list TENANT", Short: "List a tenant's API keys", Args: cobra.ExactArgs(1), RunE: run(func(a []string) (map[string]any, []string, error) {
			v, err := c.call("GET", "/tenants/"+esc(a[0])+"/keys", nil)
			return v, []string{"id", "prefix", "created_at", "last_used_at", "revoked_at"}, err
		})},
		&cobra.Command{Use: "revoke TENANT KEY_ID", Short: "Revoke an API key", Args: cobra.ExactArgs(2), RunE: run(func(a []string) (map[string]any, []string, error) {
			_, err := c.call("DELETE", "/tenants/"+esc(a[0])+"/keys/"+esc(a[1]), nil)
			if err == nil {
				fmt.Fprintln(c.out, "revoked", a[1])
			}
			return nil, nil, err
		})},
		&cobra.Command{Use: "rotate", Short: "Add a master key version, re-wrap every credential, retire unused versions", Args: cobra.NoArgs, RunE: run(func([]string) (map[string]any, []string, error) {
			v, err := c.call("POST", "/keys/rotate", nil)
			return v, []string{"key_id", "current_version", "credentials", "rewrapped", "retired"}, err
		})},
	)

	creds := &cobra.Command{Use: "credentials", Short: "Set, unset and show tenant credentials (values are write-only)"}
	var value string
	set := &cobra.Command{Use: "set TENANT PROVIDER FIELD", Short: "Set a credential; the value is read from stdin unless --value is given", Args: cobra.ExactArgs(3), RunE: run(func(a []string) (map[string]any, []string, error) {
		v := value
		if v == "" {
			line, err := bufio.NewReader(os.Stdin).ReadString('\n')
			if err != nil && line == "" {
				return nil, nil, errors.New("give the value on stdin (or --value)")
			}
			v = strings.TrimRight(line, "\r\n")
		}
		out, err := c.call("PUT", "/tenants/"+esc(a[0])+"/credentials/"+esc(a[1])+"/"+esc(a[2]), map[string]string{"value": v})
		return out, []string{"provider", "field", "fingerprint", "set_at"}, err
	})}
	set.Flags().StringVar(&value, "value", "", "the value (prefer stdin: flags end up in shell history)")
	creds.AddCommand(set,
		&cobra.Command{Use: "unset TENANT PROVIDER FIELD", Short: "Remove an operator-set credential", Args: cobra.ExactArgs(3), RunE: run(func(a []string) (map[string]any, []string, error) {
			_, err := c.call("DELETE", "/tenants/"+esc(a[0])+"/credentials/"+esc(a[1])+"/"+esc(a[2]), nil)
			if err == nil {
				fmt.Fprintln(c.out, "unset", a[1]+"."+a[2])
			}
			return nil, nil, err
		})},
		&cobra.Command{Use: "show TENANT", Short: "Show which credentials are set (fingerprints, never values)", Args: cobra.ExactArgs(1), RunE: run(func(a []string) (map[string]any, []string, error) {
			v, err := c.call("GET", "/tenants/"+esc(a[0])+"/credentials", nil)
			return v, []string{"provider", "field", "fingerprint", "set_at", "key_version"}, err
		})},
	)

	providers := &cobra.Command{Use: "providers", Short: "Enable or disable a provider for a tenant"}
	var settings []string
	enable := &cobra.Command{Use: "enable TENANT PROVIDER", Short: "Enable a provider (its required credentials must be set)", Args: cobra.ExactArgs(2), RunE: run(func(a []string) (map[string]any, []string, error) {
		s, err := pairs(settings)
		if err != nil {
			return nil, nil, err
		}
		body := map[string]any{}
		if len(s) > 0 {
			body["settings"] = s
		}
		v, err := c.call("POST", "/tenants/"+esc(a[0])+"/providers/"+esc(a[1])+"/enable", body)
		return v, []string{"tenant", "provider", "enabled"}, err
	})}
	enable.Flags().StringArrayVar(&settings, "set", nil, "setting=value, e.g. base_url=https://api.stripe.com")
	providers.AddCommand(enable,
		&cobra.Command{Use: "disable TENANT PROVIDER", Short: "Disable a provider for a tenant", Args: cobra.ExactArgs(2), RunE: run(func(a []string) (map[string]any, []string, error) {
			v, err := c.call("POST", "/tenants/"+esc(a[0])+"/providers/"+esc(a[1])+"/disable", nil)
			return v, []string{"tenant", "provider", "enabled"}, err
		})},
	)

	plugins := pluginsCmd(c)

	events := &cobra.Command{Use: "events", Short: "Replay a tenant's events"}
	var since, until, typ, status string
	replay := &cobra.Command{Use: "replay TENANT", Short: "Replay events (dead letters by default) created in [--since, --until)", Args: cobra.ExactArgs(1), RunE: run(func(a []string) (map[string]any, []string, error) {
		v, err := c.call("POST", "/tenants/"+esc(a[0])+"/events/replay", map[string]string{"since": since, "until": until, "type": typ, "status": status})
		return v, []string{"replayed"}, err
	})}
	replay.Flags().StringVar(&since, "since", "", "RFC 3339 start (required)")
	replay.Flags().StringVar(&until, "until", time.Now().UTC().Format(time.RFC3339), "RFC 3339 end")
	replay.Flags().StringVar(&typ, "type", "", "event type or prefix.*")
	replay.Flags().StringVar(&status, "status", "dead", "dead, delivered, pending or all")
	events.AddCommand(replay)

	audit := &cobra.Command{Use: "audit", Short: "Check a tenant's tamper-evident audit log"}
	audit.AddCommand(&cobra.Command{Use: "verify TENANT", Short: "Verify the hash chain and report the first broken link", Args: cobra.ExactArgs(1), RunE: func(cmd *cobra.Command, a []string) error {
		c.out = cmd.OutOrStdout()
		v, err := c.call("GET", "/tenants/"+esc(a[0])+"/audit/verify", nil)
		if err != nil {
			return err
		}
		if c.asJSON {
			return c.print(v)
		}
		if v["intact"] == true {
			fmt.Fprintf(c.out, "audit log of %s intact: %s records\n", a[0], cell(v["records"]))
			return nil
		}
		fmt.Fprintf(c.out, "audit log of %s BROKEN at record %s: %v\n", a[0], cell(v["first_broken"]), v["reason"])
		return &exitError{code: 3, err: errors.New("audit chain broken")}
	}})

	out := []*cobra.Command{tenants, keys, creds, providers, plugins, events, audit}
	for _, cmd := range out {
		addAdminFlags(cmd, c)
	}
	return out
}

// pairs parses k=v arguments.
func pairs(args []string) (map[string]string, error) {
	out := map[string]string{}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q: want key=value", a)
		}
		out[k] = v
	}
	return out, nil
}
