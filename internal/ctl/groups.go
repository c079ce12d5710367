package ctl

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"

	"github.com/spf13/cobra"

	"github.com/steward-iot/steward/internal/api"
	"github.com/steward-iot/steward/internal/inventory"
)

func groupsCommand(o *options) *cobra.Command {
	cmd := &cobra.Command{Use: "groups", Short: "List and create device groups, add and list their members"}

	var limit int
	list := &cobra.Command{
		Use:   "list",
		Short: "List the organization's device groups",
		Args:  cobra.NoArgs,
		RunE: o.run(func(s *session, _ []string) error {
			path, err := s.orgPath("/groups")
			if err != nil {
				return err
			}
			raw, groups, err := fetchAll[inventory.Group](s, path, nil, limit)
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSONList(raw)
			}
			t := newTable(s.out, "ID", "NAME", "TYPE", "QUERY", "CREATED")
			for _, g := range groups {
				t.row(g.ID, g.Name, groupType(g), orDash(g.Query), timestamp(g.CreatedAt))
			}
			return t.flush()
		}),
	}
	list.Flags().IntVar(&limit, "limit", 0, "list at most this many (default: all)")

	var req inventory.CreateGroupRequest
	create := &cobra.Command{
		Use:   "create NAME [--query 'QUERY']",
		Short: "Create a static group, or with --query a dynamic one",
		Long: `Create a device group. Without --query the group is static: add devices
with 'ctl groups add'. With --query it is dynamic: its members are the
devices matching the fleet query at any moment (see 'ctl devices list --help').`,
		Args: cobra.ExactArgs(1),
		RunE: o.run(func(s *session, args []string) error {
			path, err := s.orgPath("/groups")
			if err != nil {
				return err
			}
			req.Name = args[0]
			var g inventory.Group
			raw, err := s.create(s.ctx, path, req, &g)
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSON(raw)
			}
			t := newTable(s.out)
			t.row("id:", g.ID)
			t.row("name:", g.Name)
			t.row("type:", groupType(g))
			if g.Query != "" {
				t.row("query:", g.Query)
			}
			t.row("created:", timestamp(g.CreatedAt))
			return t.flush()
		}),
	}
	create.Flags().StringVar(&req.Query, "query", "", "fleet query defining a dynamic group's members")

	add := &cobra.Command{
		Use:   "add GROUP_ID DEVICE_ID...",
		Short: "Add devices to a static group",
		Args:  cobra.MinimumNArgs(2),
		RunE: o.run(func(s *session, args []string) error {
			path, err := s.orgPath("/groups/" + url.PathEscape(args[0]) + "/members")
			if err != nil {
				return err
			}
			ids := args[1:]
			var g inventory.Group
			var raw []byte
			done := 0
			// Each request adds all of its devices or none.
			for chunk := range slices.Chunk(ids, bulkSize) {
				raw, err = s.sendJSON(s.ctx, http.MethodPost, path, api.DeviceIDs{DeviceIDs: chunk}, &g)
				if err != nil {
					if done > 0 {
						return fmt.Errorf("%w\nthe first %d of %d devices were added; the rest were not", err, done, len(ids))
					}
					return err
				}
				done += len(chunk)
			}
			if s.json {
				return s.printJSON(raw)
			}
			_, err = fmt.Fprintf(s.out, "added %d %s to group %s (%s)\n", len(ids), plural(len(ids), "device", "devices"),
				clean(g.Name), g.ID)
			return err
		}),
	}

	var f deviceFilter
	devices := &cobra.Command{
		Use:   "devices GROUP_ID [--status S] [--query 'QUERY'] [--limit N] [--json | --csv]",
		Short: "List a group's member devices",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(s *session, args []string) error {
			if args[0] == "" {
				return errors.New("give the group's id")
			}
			f.group = args[0]
			return listDevices(s, f)
		}),
	}
	f.flags(devices, false)

	cmd.AddCommand(list, create, add, devices)
	return cmd
}

func groupType(g inventory.Group) string {
	if g.Query != "" {
		return "dynamic"
	}
	return "static"
}
