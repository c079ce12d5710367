package ctl

import (
	"fmt"
	"net/url"

	"github.com/spf13/cobra"

	"github.com/steward-iot/steward/internal/api"
	"github.com/steward-iot/steward/internal/tenancy"
)

func whoamiCommand(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Show the organization and token ctl acts as",
		Args:  cobra.NoArgs,
		RunE: o.run(func(s *session, _ []string) error {
			var w api.Whoami
			raw, err := s.get(s.ctx, "/api/v1/whoami", nil, &w)
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSON(raw)
			}
			t := newTable(s.out)
			org := fmt.Sprintf("%s (%s)", w.Org.Slug, w.Org.Name)
			if w.Org.Instance {
				org += ", the instance organization"
			}
			t.row("org:", org)
			t.row("org id:", w.Org.ID)
			t.row("token:", w.Token.Name)
			t.row("token id:", w.Token.ID)
			t.row("role:", string(w.Token.Role))
			t.row("user:", orDash(w.Token.UserID))
			t.row("expires:", optTime(w.Token.ExpiresAt, "never"))
			return t.flush()
		}),
	}
}

func orgsCommand(o *options) *cobra.Command {
	cmd := &cobra.Command{Use: "orgs", Short: "List, show and create organizations"}

	var limit int
	list := &cobra.Command{
		Use:   "list",
		Short: "List the organizations you may see (all of them for instance admins)",
		Args:  cobra.NoArgs,
		RunE: o.run(func(s *session, _ []string) error {
			raw, orgs, err := fetchAll[tenancy.Org](s, "/api/v1/orgs", nil, limit)
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSONList(raw)
			}
			t := newTable(s.out, "ID", "SLUG", "NAME", "INSTANCE", "CREATED")
			for _, g := range orgs {
				t.row(g.ID, g.Slug, g.Name, yesNo(g.Instance), timestamp(g.CreatedAt))
			}
			return t.flush()
		}),
	}
	list.Flags().IntVar(&limit, "limit", 0, "list at most this many (default: all)")

	show := &cobra.Command{
		Use:   "show SLUG",
		Short: "Show one organization",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(s *session, args []string) error {
			var g tenancy.Org
			raw, err := s.get(s.ctx, "/api/v1/orgs/"+url.PathEscape(args[0]), nil, &g)
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSON(raw)
			}
			return printOrg(s, g)
		}),
	}

	var name string
	create := &cobra.Command{
		Use:   "create SLUG --name NAME",
		Short: "Create an organization and its initial admin token (instance admins only)",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(s *session, args []string) error {
			var c tenancy.CreatedOrg
			raw, err := s.create(s.ctx, "/api/v1/orgs", tenancy.CreateOrgRequest{Slug: args[0], Name: name}, &c)
			if err != nil {
				return err
			}
			if s.json {
				if err := s.printJSON(raw); err != nil {
					return err
				}
				return missingSecret(tokenSecret(c.Token))
			}
			t := newTable(s.out)
			orgRows(t, c.Org)
			t.row("admin token id:", c.Token.ID)
			t.row("admin token expires:", optTime(c.Token.ExpiresAt, "never"))
			return printSecret(s, t, "admin token", tokenSecret(c.Token))
		}),
	}
	create.Flags().StringVar(&name, "name", "", "display name of the organization")
	_ = create.MarkFlagRequired("name")

	cmd.AddCommand(list, show, create)
	return cmd
}

func printOrg(s *session, g tenancy.Org) error {
	t := newTable(s.out)
	orgRows(t, g)
	return t.flush()
}

func orgRows(t *table, g tenancy.Org) {
	t.row("id:", g.ID)
	t.row("slug:", g.Slug)
	t.row("name:", g.Name)
	t.row("instance:", yesNo(g.Instance))
	t.row("created:", timestamp(g.CreatedAt))
}

// shownOnce is a created credential whose secret the server sends only
// in the create response: what it is, its id and secret, and the ctl
// command that revokes it.
type shownOnce struct{ what, id, secret, revoke string }

func tokenSecret(tok tenancy.CreatedToken) shownOnce {
	return shownOnce{"token", tok.ID, tok.Secret, "tokens revoke"}
}

// printSecret ends the human output of a create that returns a secret.
func printSecret(s *session, t *table, label string, c shownOnce) error {
	if c.secret != "" {
		t.row(label+":", c.secret)
	}
	if err := t.flush(); err != nil {
		return err
	}
	if err := missingSecret(c); err != nil {
		return err
	}
	_, err := fmt.Fprintln(s.out, "\nThe secret is shown only once: store it now (for example in a file only you can read). "+
		"It cannot be retrieved later.")
	return err
}

// missingSecret reports a created credential without its secret: the
// server replays a repeated idempotent create without secrets.
func missingSecret(c shownOnce) error {
	if c.secret != "" {
		return nil
	}
	return fmt.Errorf("%s %s was created but the server did not return its secret; "+
		"revoke it with 'steward ctl %s %s' and create another", c.what, c.id, c.revoke, c.id)
}
