package ctl

import (
	"fmt"
	"net/http"
	"net/url"

	"github.com/spf13/cobra"

	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/tenancy"
)

func usersCommand(o *options) *cobra.Command {
	cmd := &cobra.Command{Use: "users", Short: "List, create and disable the people in an organization"}

	var limit int
	list := &cobra.Command{
		Use:   "list",
		Short: "List the organization's users",
		Args:  cobra.NoArgs,
		RunE: o.run(func(s *session, _ []string) error {
			path, err := s.orgPath("/users")
			if err != nil {
				return err
			}
			raw, users, err := fetchAll[tenancy.User](s, path, nil, limit)
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSONList(raw)
			}
			t := newTable(s.out, "ID", "EMAIL", "NAME", "ROLE", "CREATED", "DISABLED")
			for _, u := range users {
				t.row(u.ID, u.Email, u.Name, string(u.Role), timestamp(u.CreatedAt), optTime(u.DisabledAt, "-"))
			}
			return t.flush()
		}),
	}
	list.Flags().IntVar(&limit, "limit", 0, "list at most this many (default: all)")

	var req tenancy.CreateUserRequest
	var role string
	create := &cobra.Command{
		Use:   "create --email EMAIL --name NAME --role ROLE",
		Short: "Add a person to the organization",
		Args:  cobra.NoArgs,
		RunE: o.run(func(s *session, _ []string) error {
			path, err := s.orgPath("/users")
			if err != nil {
				return err
			}
			req.Role = access.Role(role)
			var u tenancy.User
			raw, err := s.create(s.ctx, path, req, &u)
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSON(raw)
			}
			t := newTable(s.out)
			t.row("id:", u.ID)
			t.row("email:", u.Email)
			t.row("name:", u.Name)
			t.row("role:", string(u.Role))
			t.row("created:", timestamp(u.CreatedAt))
			return t.flush()
		}),
	}
	create.Flags().StringVar(&req.Email, "email", "", "e-mail address")
	create.Flags().StringVar(&req.Name, "name", "", "full name")
	create.Flags().StringVar(&role, "role", "", fmt.Sprintf("role, one of %v", access.Roles))
	for _, f := range []string{"email", "name", "role"} {
		_ = create.MarkFlagRequired(f)
	}

	disable := &cobra.Command{
		Use:   "disable ID",
		Short: "Disable a user; their tokens stop working at once",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(s *session, args []string) error {
			path, err := s.orgPath("/users/" + url.PathEscape(args[0]) + "/disable")
			if err != nil {
				return err
			}
			var u tenancy.User
			raw, err := s.change(s.ctx, http.MethodPost, path, &u)
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSON(raw)
			}
			_, err = fmt.Fprintf(s.out, "disabled user %s (%s) at %s; their tokens no longer work\n",
				u.ID, clean(u.Email), optTime(u.DisabledAt, "-"))
			return err
		}),
	}

	cmd.AddCommand(list, create, disable)
	return cmd
}
