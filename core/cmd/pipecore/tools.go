package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/pipecore/pipecore/core/internal/dispatch"
	"github.com/pipecore/pipecore/core/internal/tenant"
)

func keygenCmd() *cobra.Command {
	var webhookSecret bool
	cmd := &cobra.Command{
		Use:   "keygen",
		Short: "Generate a tenant API key (and its sha256 form for the config), or an endpoint signing secret",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if webhookSecret {
				s, err := dispatch.GenerateSecret()
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), s)
				return nil
			}
			key, err := tenant.GenerateKey()
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "key:  %s\nhash: %s\n", key, tenant.HashKey(key))
			return nil
		},
	}
	cmd.Flags().BoolVar(&webhookSecret, "webhook", false, "print a new endpoint signing secret (whsec_…) instead")
	return cmd
}

func configCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Inspect the gateway config"}
	var path string
	check := &cobra.Command{
		Use:   "check",
		Short: "Validate the config against the plugins it names (launches them briefly)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			g, err := boot(ctx, path, false)
			if err != nil {
				return err
			}
			defer g.close()
			fmt.Fprintf(cmd.OutOrStdout(), "config OK: %d tenants, plugins %v\n%s", len(g.tenants.IDs()), g.needed, g.cfg)
			return nil
		},
	}
	check.Flags().StringVarP(&path, "config", "c", "pipecore.yaml", "path of the YAML config file")
	cmd.AddCommand(check)
	return cmd
}
