// Command steward-agent is the reference Steward device agent.
//
// Usage:
//
//	steward-agent version
//	steward-agent identity --state DIR [--algorithm ed25519|ecdsa-p256] [--json]
//	steward-agent run --server URL --state DIR [--enroll-token T | --enroll-token-file F | --org SLUG]
//	    --hardware-id H [--serial S] (--version V | --version-file F) [--components FILE] [--link wifi] ...
//	    [--installer ab-dir|ab-hooks|single-slot|script --director-root F --image-root F --org SLUG
//	     --slots DIR | --hooks DIR | --script P] [--factory-image F] [--health-check CMD] [--max-boots N]
//	    [--mqtt-url URL] [--busy-file F]
//	steward-agent simulate --server URL --devices N (--enroll-token T | --org O) [--hardware-ids gw-100,sensor-7]
//	    [--versions 2.3.0=3,2.4.0] [--links wifi,cellular] [--duration 60s] [--interval-override D] [--json]
//	    [--director-root F --image-root F] [--install-failure-rate R] [--health-failure-rate R]
//	    [--link-profile CLASS=BW,LATENCY,LOSS] [--time-scale X] ...
//
// --server, --state and --enroll-token fall back to the STEWARD_AGENT_SERVER,
// STEWARD_AGENT_STATE and STEWARD_AGENT_ENROLL_TOKEN environment variables.
// run exits with status 3 when the server refuses the device for good.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/steward-iot/steward/agent"
	"github.com/steward-iot/steward/agent/identity"
)

// version is set at build time: -ldflags "-X main.version=1.2.3".
var version = "dev"

const stateEnv = "STEWARD_AGENT_STATE"

func main() {
	if err := newRootCmd().Execute(); err != nil {
		os.Exit(exitCode(err)) // cobra has already printed the error
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "steward-agent",
		Short: "Reference Steward device agent",
		// Usage text after a runtime error (e.g. a refused key) buries the error.
		SilenceUsage: true,
	}
	root.AddCommand(newVersionCmd(), newIdentityCmd(), newRunCmd(), newSimulateCmd())
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the agent and device protocol versions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "steward-agent %s (protocol %d)\n", version, agent.ProtocolVersion)
			return err
		},
	}
}

func newIdentityCmd() *cobra.Command {
	var (
		state, alg string
		asJSON     bool
	)
	cmd := &cobra.Command{
		Use:   "identity",
		Short: "Load or create the device identity and print its public key",
		Long: `Load the device key from DIR/` + identity.KeyFile + `, generating it on first use,
and print its key id and public key. The private key never leaves DIR.

An existing key is never replaced: a key file that group or others can
access, that is corrupt, or that holds another algorithm than --algorithm
is an error.

--state defaults to $` + stateEnv + `.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if state == "" {
				state = os.Getenv(stateEnv)
			}
			if state == "" {
				return fmt.Errorf("--state is required (or set %s)", stateEnv)
			}
			id, created, err := identity.LoadOrCreate(state, identity.Algorithm(alg))
			if err != nil {
				return err
			}
			if created {
				fmt.Fprintf(cmd.ErrOrStderr(), "generated a new device key in %s\n", filepath.Join(state, identity.KeyFile))
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(struct {
					KeyID        string             `json:"key_id"`
					Algorithm    identity.Algorithm `json:"algorithm"`
					PublicKeyPEM string             `json:"public_key_pem"`
					Created      bool               `json:"created"`
				}{id.KeyID(), id.Algorithm(), string(id.PublicKeyPEM()), created})
			}
			_, err = fmt.Fprintf(out, "key id:    %s\nalgorithm: %s\n%s", id.KeyID(), id.Algorithm(), id.PublicKeyPEM())
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&state, "state", "", "state `DIR` holding the device key (default $"+stateEnv+")")
	f.StringVar(&alg, "algorithm", string(identity.Ed25519), "key algorithm, ed25519 or ecdsa-p256; must match an existing key")
	f.BoolVar(&asJSON, "json", false, "print JSON: key_id, algorithm, public_key_pem, created")
	return cmd
}
