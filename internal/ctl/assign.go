package ctl

import (
	"fmt"
	"net/url"

	"github.com/spf13/cobra"

	"github.com/steward-iot/steward/internal/rollout"
)

// assignCommands are the devices subcommands for direct deployments.
func assignCommands(o *options) []*cobra.Command {
	assign := &cobra.Command{
		Use:   "assign DEVICE-ID RELEASE-ID",
		Short: "Assign the release a device should install; it learns so at its next check-in",
		Args:  cobra.ExactArgs(2),
		RunE: o.run(func(s *session, args []string) error {
			path, err := s.orgPath("/devices/" + url.PathEscape(args[0]) + "/assignment")
			if err != nil {
				return err
			}
			var a rollout.Assignment
			raw, err := s.sendJSON(s.ctx, "PUT", path, rollout.AssignRequest{ReleaseID: args[1]}, &a)
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSON(raw)
			}
			_, err = fmt.Fprintf(s.out, "device %s will install release %s (assigned by %s)\n", a.DeviceID, a.ReleaseID, a.AssignedBy)
			return err
		}),
	}
	show := &cobra.Command{
		Use:   "assignment DEVICE-ID",
		Short: "Show the release assigned to a device",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(s *session, args []string) error {
			path, err := s.orgPath("/devices/" + url.PathEscape(args[0]) + "/assignment")
			if err != nil {
				return err
			}
			var a rollout.Assignment
			raw, err := s.get(s.ctx, path, nil, &a)
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSON(raw)
			}
			t := newTable(s.out, "DEVICE", "RELEASE", "ASSIGNED BY", "ASSIGNED AT")
			t.row(a.DeviceID, a.ReleaseID, a.AssignedBy, a.AssignedAt.Format("2006-01-02 15:04:05Z07:00"))
			return t.flush()
		}),
	}
	unassign := &cobra.Command{
		Use:   "unassign DEVICE-ID",
		Short: "Remove a device's assignment; a device that has not started gets nothing",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(s *session, args []string) error {
			path, err := s.orgPath("/devices/" + url.PathEscape(args[0]) + "/assignment")
			if err != nil {
				return err
			}
			if _, err := s.change(s.ctx, "DELETE", path, nil); err != nil {
				return err
			}
			_, err = fmt.Fprintf(s.out, "device %s has no assigned release now\n", args[0])
			return err
		}),
	}
	return []*cobra.Command{assign, show, unassign, historyCommand(o)}
}
