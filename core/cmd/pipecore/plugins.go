package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pipecore/pipecore/core/internal/pluginhost"
	"github.com/pipecore/pipecore/sdk/messaging"
	"github.com/pipecore/pipecore/sdk/providertest"
)

// pluginsCmd is `pipecore plugins`: list, reload and register talk to a
// running gateway's admin API; test runs the conformance kit locally.
func pluginsCmd(c *adminClient) *cobra.Command {
	cmd := &cobra.Command{Use: "plugins", Short: "Inspect, swap, register and test plugins"}
	cmd.AddCommand(
		&cobra.Command{
			Use:   "list",
			Short: "List plugin versions: state, tenants served, restarts, checksum",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				c.out = cmd.OutOrStdout()
				v, err := c.call("GET", "/plugins", nil)
				if err != nil {
					return err
				}
				return c.print(v, "name", "version", "state", "serving", "pid", "restarts", "degraded", "tenants", "sha256", "last_error")
			},
		},
		&cobra.Command{
			Use:   "reload [NAME]",
			Short: "Rediscover the plugins directory and swap to the newest healthy version (every plugin, or NAME)",
			Long: "Starts the newest version that satisfies each tenant's constraint, health-checks it, routes new calls\n" +
				"to it and lets the replaced version finish its calls in flight before it stops. A version that fails\n" +
				"to start or its health check is refused: traffic stays where it was, and the command exits 1.",
			Args: cobra.MaximumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				c.out = cmd.OutOrStdout()
				body := map[string]string{}
				if len(args) == 1 {
					body["name"] = args[0]
				}
				v, err := c.call("POST", "/plugins/reload", body)
				if err != nil {
					return err
				}
				if c.asJSON {
					if err := c.print(v); err != nil {
						return err
					}
				} else if err := printReload(c.out, v); err != nil {
					return err
				}
				if v["ok"] != true {
					return &exitError{code: 1, err: errors.New("reload incomplete: see the refused versions above; traffic stays on the serving versions")}
				}
				return nil
			},
		},
		registerCmd(c),
		testCmd(),
	)
	return cmd
}

func registerCmd(c *adminClient) *cobra.Command {
	var sum string
	cmd := &cobra.Command{
		Use:   "register NAME PATH --sha256 HEX",
		Short: "Pin a plugin binary on the gateway's host by its SHA-256 (serves after the next reload)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c.out = cmd.OutOrStdout()
			if b, err := hex.DecodeString(sum); err != nil || len(b) != 32 {
				return errors.New("give --sha256 with the binary's SHA-256 (64 hex digits, as sha256sum prints it): the gateway refuses a file that does not match")
			}
			path, err := filepath.Abs(args[1])
			if err != nil {
				return err
			}
			v, err := c.call("POST", "/plugins/register", map[string]string{"name": args[0], "path": path, "sha256": strings.ToLower(sum)})
			if err != nil {
				return err
			}
			if c.asJSON {
				return c.print(v)
			}
			version := cell(v["version"])
			if version == "" {
				version = "(version read at its first launch)"
			}
			fmt.Fprintf(c.out, "registered %s %s from %s\nsha256 %s\nrun `pipecore plugins reload %s` to route tenants to it\n",
				cell(v["plugin"]), version, cell(v["path"]), cell(v["sha256"]), cell(v["plugin"]))
			return nil
		},
	}
	cmd.Flags().StringVar(&sum, "sha256", "", "the binary's SHA-256 (required)")
	return cmd
}

// printReload writes one row per route and per refused version.
func printReload(w io.Writer, v map[string]any) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PLUGIN\tTENANTS\tCONSTRAINT\tFROM\tTO\tRESULT")
	rows, _ := v["data"].([]any)
	for _, r := range rows {
		p, _ := r.(map[string]any)
		name := cell(p["name"])
		routes, _ := p["routes"].([]any)
		for _, rt := range routes {
			m, _ := rt.(map[string]any)
			tenants := "(no constraint)"
			if m["tenants"] != nil {
				tenants = cell(m["tenants"])
			}
			constraint := cell(m["constraint"])
			if constraint == "" {
				constraint = "*"
			}
			from, to := cell(m["from"]), cell(m["to"])
			result := "unchanged"
			switch {
			case to == "":
				result = "NO VERSION"
			case from == "":
				result = "started"
			case from != to:
				result = "swapped"
			}
			if m["healthy"] != true && to != "" {
				result += " (not healthy yet)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", name, tenants, constraint, dash(from), dash(to), result)
		}
		refused, _ := p["refused"].([]any)
		for _, f := range refused {
			m, _ := f.(map[string]any)
			fmt.Fprintf(tw, "%s\t-\t-\t-\t%s\tREFUSED: %s (%s)\n", name, dash(cell(m["version"])), oneLine(cell(m["error"])), cell(m["path"]))
		}
		if e := cell(p["error"]); e != "" && e != "-" {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\tERROR: %s\n", name, oneLine(e))
		}
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// testCmd is `pipecore plugins test PATH`: the conformance kit
// (sdk/providertest.CheckBinary) against a plugin binary, launched the way
// the gateway launches it.
func testCmd() *cobra.Command {
	var settings, credentials, to []string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "test PATH",
		Short: "Run the conformance checks against a plugin binary; exits 1 when a check fails",
		Long: "Launches the binary as the gateway does and checks the plugin contract offline (handshake, Info,\n" +
			"capabilities, webhook parsing, error kinds, deadlines, no secret in errors or logs, clean exit).\n" +
			"With --set or --credential (a sandbox or fake: set base_url), the online checks of every capability run too.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			cfg := providertest.BinaryConfig{Timeout: timeout}
			var err error
			if cfg.Settings, err = optionalPairs(settings); err != nil {
				return err
			}
			if cfg.Credentials, err = optionalPairs(credentials); err != nil {
				return err
			}
			recipients, err := optionalPairs(to)
			if err != nil {
				return err
			}
			for ch, r := range recipients {
				if cfg.To == nil {
					cfg.To = map[messaging.Channel]string{}
				}
				cfg.To[messaging.Channel(ch)] = r
			}
			asJSON, _ := cmd.Flags().GetBool("json")
			return runPluginTest(cmd.Context(), out, args[0], cfg, asJSON)
		},
	}
	cmd.Flags().StringArrayVar(&settings, "set", nil, "a tenant setting for the online checks, key=value (e.g. base_url=http://127.0.0.1:12111)")
	cmd.Flags().StringArrayVar(&credentials, "credential", nil, "a tenant credential for the online checks, key=value")
	cmd.Flags().StringArrayVar(&to, "to", nil, "a messaging recipient for online sends, channel=recipient (e.g. whatsapp=+56912345678)")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "deadline of each online call (default 20s)")
	return cmd
}

// optionalPairs is pairs, nil for no arguments.
func optionalPairs(args []string) (map[string]string, error) {
	if len(args) == 0 {
		return nil, nil
	}
	return pairs(args)
}

func runPluginTest(ctx context.Context, out io.Writer, path string, cfg providertest.BinaryConfig, asJSON bool) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	// The kit expects the file name the gateway discovers without a
	// version (pipecore-plugin-NAME): a versioned file is checked through
	// a link of that name, and its version against the plugin's Info.
	target := abs
	name, fileVersion, versioned := pluginhost.ParseFileName(filepath.Base(abs))
	if versioned && fileVersion != "" {
		dir, err := os.MkdirTemp("", "pipecore-plugin-test")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		target = filepath.Join(dir, pluginhost.BinaryPrefix+name)
		if err := os.Symlink(abs, target); err != nil {
			return err
		}
	}
	rep, err := providertest.CheckBinary(ctx, target, cfg)
	if err != nil {
		return fmt.Errorf("plugins test %s: %w", path, err)
	}
	if versioned && fileVersion != "" && rep.Version != "" {
		res := providertest.Result{Check: "file_version", Status: providertest.StatusPass}
		if rep.Version != fileVersion {
			res.Status = providertest.StatusFail
			res.Detail = fmt.Sprintf("the file name says %s but the plugin reports %s: the gateway refuses it", fileVersion, rep.Version)
		}
		rep.Results = append(rep.Results, res)
	}
	failed, skipped := 0, 0
	for _, r := range rep.Results {
		switch r.Status {
		case providertest.StatusFail:
			failed++
		case providertest.StatusSkip:
			skipped++
		}
	}
	if asJSON {
		results := make([]map[string]string, 0, len(rep.Results))
		for _, r := range rep.Results {
			results = append(results, map[string]string{"check": r.Check, "status": r.Status, "detail": r.Detail})
		}
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"path": abs, "plugin": rep.Plugin, "version": rep.Version, "failed": failed, "results": results}); err != nil {
			return err
		}
	} else {
		plugin := rep.Plugin
		if plugin == "" {
			plugin = "(unknown plugin)"
		}
		fmt.Fprintf(out, "%s %s (%s): %d checks, %d failed, %d skipped\n\n", plugin, rep.Version, abs, len(rep.Results), failed, skipped)
		if err := rep.WriteTable(out); err != nil {
			return err
		}
	}
	if rep.Failed() {
		return &exitError{code: 1, err: fmt.Errorf("%s does not conform: %d of %d checks failed", path, failed, len(rep.Results))}
	}
	if !asJSON {
		fmt.Fprintln(out, "\nPASS")
	}
	return nil
}
