package ctl

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/steward-iot/steward/internal/disclosure"
)

func reportsCommand(o *options) *cobra.Command {
	cmd := &cobra.Command{Use: "reports", Short: "Handle inbound vulnerability reports: list, read, acknowledge, answer, triage, link"}

	var stage string
	var limit int
	list := &cobra.Command{
		Use:   "list [--stage received]",
		Short: "List reports, oldest first",
		Args:  cobra.NoArgs,
		RunE: o.run(func(s *session, _ []string) error {
			path, err := s.orgPath("/reports")
			if err != nil {
				return err
			}
			q := url.Values{}
			if stage != "" {
				q.Set("stage", stage)
			}
			raw, items, err := fetchAll[disclosure.Report](s, path, q, limit)
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSONList(raw)
			}
			t := newTable(s.out, "ID", "STAGE", "RECEIVED", "ACK DUE", "ACKNOWLEDGED", "TITLE")
			for _, r := range items {
				t.row(r.ID, string(r.Stage), r.ReceivedAt.Format("2006-01-02 15:04"), r.AckDueAt.Format("2006-01-02 15:04"),
					optTime(r.AckedAt, "not yet"), clip(r.Title, 60))
			}
			return t.flush()
		}),
	}
	list.Flags().StringVar(&stage, "stage", "", "only reports in this stage (received, acknowledged, triaging, confirmed, rejected, duplicate, closed)")
	list.Flags().IntVar(&limit, "limit", 0, "list at most this many (default: all)")

	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show a report with its messages (internal notes marked) and linked vulnerabilities",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(s *session, args []string) error {
			path, err := s.orgPath("/reports/" + url.PathEscape(args[0]))
			if err != nil {
				return err
			}
			var r disclosure.ReportDetail
			raw, err := s.get(s.ctx, path, nil, &r)
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSON(raw)
			}
			fmt.Fprintf(s.out, "report:        %s\ntitle:         %s\nstage:         %s\n", r.ID, r.Title, r.Stage)
			fmt.Fprintf(s.out, "received:      %s (ack due %s)\nacknowledged:  %s\n", r.ReceivedAt.Format("2006-01-02 15:04Z07:00"),
				r.AckDueAt.Format("2006-01-02 15:04Z07:00"), optTime(r.AckedAt, "not yet"))
			if r.Product != "" {
				fmt.Fprintf(s.out, "product:       %s %s\n", r.Product, r.Version)
			}
			if r.ReporterName != "" || r.ReporterEmail != "" {
				fmt.Fprintf(s.out, "reporter:      %s <%s>\n", r.ReporterName, r.ReporterEmail)
			}
			fmt.Fprintf(s.out, "\n%s\n", r.Description)
			for _, l := range r.Vulnerabilities {
				fmt.Fprintf(s.out, "\nlinked to vulnerability %s\n", l.VulnerabilityID)
			}
			for _, m := range r.Messages {
				who := string(m.Author)
				if m.Internal {
					who += ", internal note"
				}
				fmt.Fprintf(s.out, "\n--- %s (%s) %s\n%s\n", m.AuthorName, who, m.CreatedAt.Format("2006-01-02 15:04"), m.Body)
			}
			return nil
		}),
	}

	var ackMessage string
	ack := &cobra.Command{
		Use:   "ack ID [--message TEXT]",
		Short: "Acknowledge a report to its reporter",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(s *session, args []string) error {
			return s.reportChange(args[0], "/acknowledge", disclosure.AcknowledgeRequest{Message: ackMessage}, "acknowledged")
		}),
	}
	ack.Flags().StringVar(&ackMessage, "message", "", "what the reporter reads")

	var reply disclosure.ReplyRequest
	replyCmd := &cobra.Command{
		Use:   "reply ID --message TEXT [--internal]",
		Short: "Write to the reporter, or add an internal note",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(s *session, args []string) error {
			path, err := s.orgPath("/reports/" + url.PathEscape(args[0]) + "/messages")
			if err != nil {
				return err
			}
			var m disclosure.Message
			raw, err := s.sendJSON(s.ctx, "POST", path, reply, &m)
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSON(raw)
			}
			what := "sent to the reporter"
			if m.Internal {
				what = "added as an internal note"
			}
			_, err = fmt.Fprintf(s.out, "message %s %s\n", m.ID, what)
			return err
		}),
	}
	replyCmd.Flags().StringVar(&reply.Body, "message", "", "the message")
	replyCmd.Flags().BoolVar(&reply.Internal, "internal", false, "an internal note the reporter never sees")
	_ = replyCmd.MarkFlagRequired("message")

	var st disclosure.StageRequest
	stageCmd := &cobra.Command{
		Use:   "stage ID STAGE [--reason TEXT] [--message TEXT]",
		Short: "Move a report to another stage (rejected and duplicate need --reason)",
		Args:  cobra.ExactArgs(2),
		RunE: o.run(func(s *session, args []string) error {
			st.Stage = disclosure.Stage(args[1])
			return s.reportChange(args[0], "/stage", st, "now "+args[1])
		}),
	}
	stageCmd.Flags().StringVar(&st.Reason, "reason", "", "why (internal)")
	stageCmd.Flags().StringVar(&st.Message, "message", "", "what the reporter reads")

	link := &cobra.Command{
		Use:   "link ID VULNERABILITY",
		Short: "Link a report to the vulnerability it describes",
		Args:  cobra.ExactArgs(2),
		RunE: o.run(func(s *session, args []string) error {
			path, err := s.orgPath("/reports/" + url.PathEscape(args[0]) + "/vulnerabilities")
			if err != nil {
				return err
			}
			raw, err := s.sendJSON(s.ctx, "POST", path, disclosure.LinkRequest{VulnerabilityID: args[1]}, nil)
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSON(raw)
			}
			_, err = fmt.Fprintf(s.out, "report %s linked to vulnerability %s\n", args[0], args[1])
			return err
		}),
	}
	cmd.AddCommand(list, show, ack, replyCmd, stageCmd, link)
	return cmd
}

func (s *session) reportChange(id, suffix string, body any, done string) error {
	path, err := s.orgPath("/reports/" + url.PathEscape(id) + suffix)
	if err != nil {
		return err
	}
	var r disclosure.Report
	raw, err := s.sendJSON(s.ctx, "POST", path, body, &r)
	if err != nil {
		return err
	}
	if s.json {
		return s.printJSON(raw)
	}
	_, err = fmt.Fprintf(s.out, "report %s %s (stage %s)\n", r.ID, done, r.Stage)
	return err
}

// clip shortens s to n runes for a table cell.
func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
