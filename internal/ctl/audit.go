package ctl

import (
	"net/url"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/steward-iot/steward/internal/audit"
)

func auditCommand(o *options) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Read the organization's audit log"}

	var (
		action string
		limit  int
	)
	list := &cobra.Command{
		Use:   "list [--action token.] [--limit N]",
		Short: "List audit events, newest first",
		Args:  cobra.NoArgs,
		RunE: o.run(func(s *session, _ []string) error {
			path, err := s.orgPath("/audit")
			if err != nil {
				return err
			}
			q := url.Values{}
			if action != "" {
				q.Set("action", action)
			}
			raw, events, err := fetchAll[audit.Event](s, path, q, limit)
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSONList(raw)
			}
			t := newTable(s.out, "SEQ", "TIME", "ACTOR", "ACTION", "TARGET")
			for _, e := range events {
				actor := e.Actor.Name
				if actor == "" {
					actor = e.Actor.ID
				}
				t.row(strconv.FormatInt(e.Seq, 10), timestamp(e.At), string(e.Actor.Kind)+" "+actor,
					e.Action, e.TargetType+" "+e.TargetID)
			}
			return t.flush()
		}),
	}
	list.Flags().StringVar(&action, "action", "", "only this action, or a prefix ending in '.' such as token.")
	list.Flags().IntVar(&limit, "limit", 0, "list at most this many events (default: all)")

	cmd.AddCommand(list)
	return cmd
}
