package ctl

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/spf13/cobra"

	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/tenancy"
)

func tokensCommand(o *options) *cobra.Command {
	cmd := &cobra.Command{Use: "tokens", Short: "List, create and revoke API tokens"}

	var limit int
	list := &cobra.Command{
		Use:   "list",
		Short: "List the organization's API tokens (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: o.run(func(s *session, _ []string) error {
			path, err := s.orgPath("/tokens")
			if err != nil {
				return err
			}
			raw, toks, err := fetchAll[tenancy.Token](s, path, nil, limit)
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSONList(raw)
			}
			now := time.Now()
			t := newTable(s.out, "ID", "NAME", "ROLE", "STATUS", "USER", "CREATED", "EXPIRES")
			for _, k := range toks {
				t.row(k.ID, k.Name, string(k.Role), tokenStatus(k, now), orDash(k.UserID),
					timestamp(k.CreatedAt), optTime(k.ExpiresAt, "never"))
			}
			return t.flush()
		}),
	}
	list.Flags().IntVar(&limit, "limit", 0, "list at most this many (default: all)")

	var (
		req       tenancy.CreateTokenRequest
		role      string
		expiresIn time.Duration
	)
	create := &cobra.Command{
		Use:   "create --name NAME --role ROLE [--user ID] [--expires-in 720h]",
		Short: "Create an API token; its secret is printed only once",
		Args:  cobra.NoArgs,
		RunE: o.run(func(s *session, _ []string) error {
			path, err := s.orgPath("/tokens")
			if err != nil {
				return err
			}
			req.Role = access.Role(role)
			if expiresIn != 0 {
				req.ExpiresIn = expiresIn.String()
			}
			var tok tenancy.CreatedToken
			raw, err := s.create(s.ctx, path, req, &tok)
			if err != nil {
				return err
			}
			if s.json {
				if err := s.printJSON(raw); err != nil {
					return err
				}
				return missingSecret(tokenSecret(tok))
			}
			t := newTable(s.out)
			t.row("id:", tok.ID)
			t.row("name:", tok.Name)
			t.row("role:", string(tok.Role))
			t.row("user:", orDash(tok.UserID))
			t.row("expires:", optTime(tok.ExpiresAt, "never"))
			return printSecret(s, t, "secret", tokenSecret(tok))
		}),
	}
	create.Flags().StringVar(&req.Name, "name", "", "what the token is for, e.g. \"ci pipeline\"")
	create.Flags().StringVar(&role, "role", "", fmt.Sprintf("role, one of %v", access.Roles))
	create.Flags().StringVar(&req.UserID, "user", "", "id of the user the token acts for (default: a service token)")
	create.Flags().DurationVar(&expiresIn, "expires-in", 0, "lifetime such as 720h (default: the server's, 90 days)")
	for _, f := range []string{"name", "role"} {
		_ = create.MarkFlagRequired(f)
	}

	revoke := &cobra.Command{
		Use:   "revoke ID...",
		Short: "Revoke API tokens; each fails from its next request on",
		Args:  cobra.MinimumNArgs(1),
		RunE: o.run(func(s *session, ids []string) error {
			base, err := s.orgPath("/tokens/")
			if err != nil {
				return err
			}
			return revokeEach(s, base, ids, "token", func(t tenancy.Token) (string, string) { return t.ID, t.Name })
		}),
	}

	cmd.AddCommand(list, create, revoke)
	return cmd
}

func tokenStatus(t tenancy.Token, now time.Time) string {
	switch {
	case t.RevokedAt != nil:
		return "revoked " + timestamp(*t.RevokedAt)
	case !t.Active(now):
		return "expired"
	}
	return "active"
}

// revokeEach sends DELETE base+id for every id and reports each; one
// failure does not stop the rest. noun names the kind ("token").
func revokeEach[T any](s *session, base string, ids []string, noun string, describe func(T) (id, name string)) error {
	revoked := []json.RawMessage{}
	for _, id := range ids {
		var v T
		raw, err := s.change(s.ctx, http.MethodDelete, base+url.PathEscape(id), &v)
		if err != nil {
			fmt.Fprintf(s.errOut, "error: %s: %v\n", clean(id), err)
			continue
		}
		revoked = append(revoked, raw)
		if !s.json {
			vid, name := describe(v)
			fmt.Fprintf(s.out, "revoked %s %s (%s)\n", noun, vid, clean(name))
		}
	}
	if s.json {
		if err := s.printJSONList(revoked); err != nil {
			return err
		}
	}
	if failed := len(ids) - len(revoked); failed > 0 {
		return fmt.Errorf("%d of %d %ss not revoked", failed, len(ids), noun)
	}
	return nil
}
