package ctl

import (
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/steward-iot/steward/internal/identity"
	"github.com/steward-iot/steward/internal/inventory"
)

func enrollTokensCommand(o *options) *cobra.Command {
	cmd := &cobra.Command{Use: "enroll-tokens", Short: "List, create and revoke enrollment tokens, with which devices enroll as active"}

	var limit int
	list := &cobra.Command{
		Use:   "list",
		Short: "List the organization's enrollment tokens (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: o.run(func(s *session, _ []string) error {
			path, err := s.orgPath("/enrollment-tokens")
			if err != nil {
				return err
			}
			raw, toks, err := fetchAll[identity.EnrollmentToken](s, path, nil, limit)
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSONList(raw)
			}
			slugs := map[string]string{}
			for _, k := range toks {
				if k.ProductID != "" {
					slugs = s.productSlugs()
					break
				}
			}
			now := time.Now()
			t := newTable(s.out, "ID", "NAME", "PRODUCT", "USES", "STATUS", "CREATED", "EXPIRES")
			for _, k := range toks {
				product := "any"
				if k.ProductID != "" {
					product = k.ProductID
					if slug, ok := slugs[k.ProductID]; ok {
						product = slug
					}
				}
				t.row(k.ID, k.Name, product, fmt.Sprintf("%d/%d", k.Uses, k.MaxUses), enrollTokenStatus(k, now),
					timestamp(k.CreatedAt), timestamp(k.ExpiresAt))
			}
			return t.flush()
		}),
	}
	list.Flags().IntVar(&limit, "limit", 0, "list at most this many (default: all)")

	var (
		req       identity.CreateEnrollmentTokenRequest
		expiresIn time.Duration
	)
	create := &cobra.Command{
		Use:   "create --name NAME [--product SLUG] [--max-uses N] [--expires-in 168h]",
		Short: "Create an enrollment token; its secret is printed only once",
		Long: `Create an enrollment token. A device that enrolls with its secret goes
active at once, without waiting for 'ctl devices accept'. The secret is
printed only once.`,
		Args: cobra.NoArgs,
		RunE: o.run(func(s *session, _ []string) error {
			path, err := s.orgPath("/enrollment-tokens")
			if err != nil {
				return err
			}
			if expiresIn != 0 {
				req.ExpiresIn = expiresIn.String()
			}
			var tok identity.CreatedEnrollmentToken
			raw, err := s.create(s.ctx, path, req, &tok)
			if err != nil {
				return err
			}
			secret := shownOnce{"enrollment token", tok.ID, tok.Secret, "enroll-tokens revoke"}
			if s.json {
				if err := s.printJSON(raw); err != nil {
					return err
				}
				return missingSecret(secret)
			}
			t := newTable(s.out)
			t.row("id:", tok.ID)
			t.row("name:", tok.Name)
			t.row("product:", orAny(req.Product))
			t.row("max uses:", strconv.Itoa(tok.MaxUses))
			t.row("expires:", timestamp(tok.ExpiresAt))
			return printSecret(s, t, "secret", secret)
		}),
	}
	create.Flags().StringVar(&req.Name, "name", "", "what the token is for, e.g. \"factory line 2\"")
	create.Flags().StringVar(&req.Product, "product", "", "slug of the only product that may enroll with it (default: any)")
	create.Flags().IntVar(&req.MaxUses, "max-uses", 0, "how many devices may enroll with it (default: the server's, 1)")
	create.Flags().DurationVar(&expiresIn, "expires-in", 0, "lifetime such as 168h (default: the server's, 7 days)")
	_ = create.MarkFlagRequired("name")

	revoke := &cobra.Command{
		Use:   "revoke ID...",
		Short: "Revoke enrollment tokens; devices already enrolled stay enrolled",
		Args:  cobra.MinimumNArgs(1),
		RunE: o.run(func(s *session, ids []string) error {
			base, err := s.orgPath("/enrollment-tokens/")
			if err != nil {
				return err
			}
			return revokeEach(s, base, ids, "enrollment token", func(t identity.EnrollmentToken) (string, string) { return t.ID, t.Name })
		}),
	}

	cmd.AddCommand(list, create, revoke)
	return cmd
}

func enrollTokenStatus(t identity.EnrollmentToken, now time.Time) string {
	switch {
	case t.RevokedAt != nil:
		return "revoked " + timestamp(*t.RevokedAt)
	case !now.Before(t.ExpiresAt):
		return "expired"
	case t.Uses >= t.MaxUses:
		return "used up"
	}
	return "active"
}

// productSlugs maps product ids to slugs, for tables that would otherwise
// show only ids. Failing that it returns an empty map: the ids will do.
func (s *session) productSlugs() map[string]string {
	path, err := s.orgPath("/products")
	if err != nil {
		return map[string]string{}
	}
	_, prods, _ := fetchAll[inventory.Product](s, path, nil, 0)
	m := make(map[string]string, len(prods))
	for _, p := range prods {
		m[p.ID] = p.Slug
	}
	return m
}

func orAny(s string) string {
	if s == "" {
		return "any"
	}
	return s
}
