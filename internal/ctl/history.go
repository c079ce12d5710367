package ctl

import (
	"net/url"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/steward-iot/steward/internal/rollout"
)

// historyCommand is "devices updates": a device's update history.
func historyCommand(o *options) *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "updates DEVICE-ID",
		Short: "Show a device's update history: the status it reported at each step, oldest first",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(s *session, args []string) error {
			path, err := s.orgPath("/devices/" + url.PathEscape(args[0]) + "/updates")
			if err != nil {
				return err
			}
			raw, events, err := fetchAll[rollout.UpdateEvent](s, path, nil, limit)
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSONList(raw)
			}
			t := newTable(s.out, "RECEIVED", "DEVICE TIME", "RELEASE", "VERSION", "STEP", "REASON", "PROGRESS", "DETAIL")
			for _, e := range events {
				t.row(timestamp(e.ReceivedAt), timestamp(e.DeviceTime), e.ReleaseID, e.Version, e.Step, dash(e.ReasonCode),
					progress(e.BytesDone, e.BytesTotal), dash(e.Detail))
			}
			return t.flush()
		}),
	}
	cmd.Flags().IntVar(&limit, "limit", 0, "list at most this many events (default: all)")
	return cmd
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// progress shows reported byte counts as "done/total (pct%)".
func progress(done, total *int64) string {
	switch {
	case done == nil && total == nil:
		return "-"
	case total == nil:
		return bytesIEC(*done)
	case done == nil:
		return "?/" + bytesIEC(*total)
	case *total == 0:
		return bytesIEC(*done) + "/" + bytesIEC(*total)
	}
	return bytesIEC(*done) + "/" + bytesIEC(*total) + " (" + strconv.FormatInt(*done*100 / *total, 10) + "%)"
}
