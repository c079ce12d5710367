// Package ctl is `steward ctl`, the admin command line. It is a thin
// client of the admin HTTP API and decodes responses into the server's own
// types (api, tenancy, audit), so the two cannot drift apart silently.
package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/steward-iot/steward/internal/api"
)

const (
	defaultServer = "http://127.0.0.1:8080"
	// defaultTokenFile is where `steward serve` writes the bootstrap admin
	// token on first start, relative to the directory it runs in.
	defaultTokenFile = "steward-data/admin.token"
)

// options are the persistent flags of `ctl`.
type options struct {
	server    string
	token     string
	tokenFile string
	org       string
	json      bool
	timeout   time.Duration
}

// Command returns the `ctl` command for the caller to add to its root.
// Errors are returned, not printed: the caller prints them (steward's main
// prints "error: ..."), and cobra's own error and usage printing should be
// silenced on the root, as steward's is.
func Command() *cobra.Command {
	o := &options{}
	cmd := &cobra.Command{
		Use:   "ctl",
		Short: "Administer a Steward server through its admin API",
		Long: `ctl administers a running Steward server through its admin HTTP API:
organizations, users, API tokens, the audit log, products, enrollment,
devices, device groups, installed versions, artifacts and releases.

The API token comes from, in order: --token, STEWARD_TOKEN, --token-file or
STEWARD_TOKEN_FILE, and finally ./` + defaultTokenFile + `, which
'steward serve' writes on first start. Prefer the environment or a file
(mode 0600) to --token: a flag shows in the process list and shell history.`,
	}
	f := cmd.PersistentFlags()
	f.StringVar(&o.server, "server", defaultServer, "URL of the Steward server (env STEWARD_SERVER)")
	f.StringVar(&o.token, "token", "", "API token (env STEWARD_TOKEN); the env var or --token-file is safer: flags show in ps and shell history")
	f.StringVar(&o.tokenFile, "token-file", "", "file holding the API token (env STEWARD_TOKEN_FILE; default ./"+defaultTokenFile+" if it exists)")
	f.StringVar(&o.org, "org", "", "organization slug (default: the token's own organization)")
	f.BoolVar(&o.json, "json", false, "print the API's JSON objects (a JSON array for lists) instead of tables")
	f.DurationVar(&o.timeout, "timeout", 30*time.Second, "time limit for each HTTP request")
	cmd.AddCommand(whoamiCommand(o), orgsCommand(o), usersCommand(o), tokensCommand(o), auditCommand(o),
		productsCommand(o), enrollTokensCommand(o), devicesCommand(o), groupsCommand(o), versionsCommand(o),
		artifactsCommand(o), releasesCommand(o), tufCommand(o),
		vulnsCommand(o), reportsCommand(o), subscriptionsCommand(o), advisoriesCommand(o), rolloutsCommand(o))
	return cmd
}

// session is one invocation: the API client, where output goes, and the
// organization it acts in once known.
type session struct {
	*client
	ctx    context.Context
	out    io.Writer
	errOut io.Writer
	json   bool
	org    string
}

// run adapts a session function to a cobra RunE.
func (o *options) run(fn func(s *session, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		s, err := o.session(cmd)
		if err != nil {
			return err
		}
		return fn(s, args)
	}
}

func (o *options) session(cmd *cobra.Command) (*session, error) {
	s := &session{ctx: cmd.Context(), out: cmd.OutOrStdout(), errOut: cmd.ErrOrStderr(), json: o.json, org: o.org}
	// steward's root fills flags from STEWARD_* variables too; reading them
	// here keeps the documented variables working under any root.
	server := o.server
	if v := os.Getenv("STEWARD_SERVER"); v != "" && !cmd.Flags().Changed("server") {
		server = v
	}
	base, err := parseServer(server)
	if err != nil {
		return nil, err
	}
	token, err := o.resolveToken(cmd, s.errOut)
	if err != nil {
		return nil, err
	}
	if base.Scheme == "http" && !loopback(base.Hostname()) {
		fmt.Fprintf(s.errOut, "warning: sending the API token to %s over unencrypted http; use https\n", base.Host)
	}
	s.client = &client{base: strings.TrimSuffix(base.String(), "/"), token: token,
		hc: &http.Client{Timeout: o.timeout}}
	return s, nil
}

func parseServer(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--server %q is not a server URL like %s", s, defaultServer)
	}
	u.RawQuery, u.Fragment = "", ""
	return u, nil
}

func loopback(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

var errNoToken = errors.New("no API token; supply one with --token, with the STEWARD_TOKEN environment variable, " +
	"or in a file named by --token-file or STEWARD_TOKEN_FILE (default ./" + defaultTokenFile +
	", which 'steward serve' writes on first start)")

// resolveToken applies the precedence --token > STEWARD_TOKEN >
// --token-file > STEWARD_TOKEN_FILE > the default file.
func (o *options) resolveToken(cmd *cobra.Command, warn io.Writer) (string, error) {
	if t := strings.TrimSpace(o.token); t != "" {
		return t, nil
	}
	if t := strings.TrimSpace(os.Getenv("STEWARD_TOKEN")); t != "" {
		return t, nil
	}
	path := o.tokenFile
	if !cmd.Flags().Changed("token-file") {
		path = os.Getenv("STEWARD_TOKEN_FILE")
	}
	if path == "" {
		if _, err := os.Stat(defaultTokenFile); err != nil {
			return "", errNoToken
		}
		path = defaultTokenFile
	}
	return readTokenFile(path, warn)
}

func readTokenFile(path string, warn io.Writer) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	// Windows reports made-up permission bits; only POSIX modes mean anything.
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o044 != 0 {
		fmt.Fprintf(warn, "warning: token file %s is readable by other users (mode %04o); restrict it with: chmod 600 %s\n",
			path, fi.Mode().Perm(), path)
	}
	// A token is tens of bytes; the bound guards against a wrong path.
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return "", fmt.Errorf("token file %s: %w", path, err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", fmt.Errorf("token file %s is empty", path)
	}
	return t, nil
}

// orgPath returns the API path of the session's organization followed by
// suffix, asking the server for the caller's own org when --org is unset.
func (s *session) orgPath(suffix string) (string, error) {
	if s.org == "" {
		var w api.Whoami
		if _, err := s.get(s.ctx, "/api/v1/whoami", nil, &w); err != nil {
			return "", err
		}
		s.org = w.Org.Slug
	}
	return "/api/v1/orgs/" + url.PathEscape(s.org) + suffix, nil
}
