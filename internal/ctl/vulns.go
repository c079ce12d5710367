package ctl

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/steward-iot/steward/internal/vuln"
	"github.com/steward-iot/steward/internal/vuln/scoring"
)

func vulnsCommand(o *options) *cobra.Command {
	cmd := &cobra.Command{Use: "vulns", Short: "Track vulnerabilities: import, triage, assess, own, escalate, accept risk, CRA reports, what they affect"}

	var reported bool
	imp := &cobra.Command{
		Use:   "import OSV.json [--reported]",
		Short: "Import (or update) a vulnerability from an OSV record",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(s *session, args []string) error {
			body, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			path, err := s.orgPath("/vulnerabilities/osv")
			if err != nil {
				return err
			}
			if reported {
				path += "?reported=true"
			}
			var v vuln.Vulnerability
			raw, err := s.sendJSON(s.ctx, "POST", path, json.RawMessage(body), &v)
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSON(raw)
			}
			_, err = fmt.Fprintf(s.out, "vulnerability %s (%s), stage %s\n", v.VulnID, v.ID, v.Stage)
			return err
		}),
	}
	imp.Flags().BoolVar(&reported, "reported", false, "a report not yet public: starts at received with its acknowledgement clock")

	var limit int
	list := &cobra.Command{
		Use:   "list",
		Short: "List vulnerabilities with stage, priority and the next deadline",
		Args:  cobra.NoArgs,
		RunE: o.run(func(s *session, _ []string) error {
			path, err := s.orgPath("/vulnerabilities")
			if err != nil {
				return err
			}
			raw, items, err := fetchAll[vuln.Vulnerability](s, path, nil, limit)
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSONList(raw)
			}
			t := newTable(s.out, "ID", "RECORD", "STAGE", "PRIORITY", "EXPLOITED", "NEXT DEADLINE", "SUMMARY")
			for _, v := range items {
				t.row(v.ID, v.VulnID, string(v.Stage), orDash(string(v.Priority)), yesNo(v.KnownExploited), nextDeadline(v), clip(v.Summary, 50))
			}
			return t.flush()
		}),
	}
	list.Flags().IntVar(&limit, "limit", 0, "list at most this many (default: all)")

	worklist := &cobra.Command{
		Use:   "worklist",
		Short: "Open vulnerabilities in the order to work on them (priority, exploited, cost of the fix, CVSS)",
		Args:  cobra.NoArgs,
		RunE: o.run(func(s *session, _ []string) error {
			path, err := s.orgPath("/vulnerabilities/worklist")
			if err != nil {
				return err
			}
			var items []vuln.Vulnerability
			raw, err := s.get(s.ctx, path, nil, &items)
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSON(raw)
			}
			t := newTable(s.out, "#", "RECORD", "STAGE", "PRIORITY", "EXPLOITED", "NEXT DEADLINE", "SUMMARY")
			for i, v := range items {
				t.row(fmt.Sprint(i+1), v.VulnID, string(v.Stage), orDash(string(v.Priority)), yesNo(v.KnownExploited), nextDeadline(v), clip(v.Summary, 50))
			}
			return t.flush()
		}),
	}

	show := &cobra.Command{
		Use:   "show ID|RECORD-ID",
		Short: "Show a vulnerability: stage, owner, assessment, SLA and CRA clocks, risk acceptance",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(s *session, args []string) error {
			path, err := s.orgPath("/vulnerabilities/" + url.PathEscape(args[0]))
			if err != nil {
				return err
			}
			var v vuln.Vulnerability
			raw, err := s.get(s.ctx, path, nil, &v)
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSON(raw)
			}
			return printVuln(s, v)
		}),
	}

	affected := &cobra.Command{
		Use:   "affected ID|RECORD-ID",
		Short: "Releases (from SBOMs) and devices (from their reports) the vulnerability affects",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(s *session, args []string) error {
			path, err := s.orgPath("/vulnerabilities/" + url.PathEscape(args[0]) + "/affected")
			if err != nil {
				return err
			}
			var a vuln.Affected
			raw, err := s.get(s.ctx, path, nil, &a)
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSON(raw)
			}
			t := newTable(s.out, "KIND", "ID", "LABEL", "COMPONENT", "INSTALLED", "FIXED IN")
			for _, group := range []struct {
				kind   string
				owners []vuln.AffectedOwner
			}{{"release", a.Releases}, {"device", a.Devices}} {
				for _, o := range group.owners {
					for _, c := range o.Components {
						t.row(group.kind, o.ID, o.Label, c.Package, c.Version, orDash(c.Fixed))
					}
				}
			}
			if err := t.flush(); err != nil {
				return err
			}
			_, err = fmt.Fprintf(s.out, "\n%d releases, %d devices affected\n", len(a.Releases), a.DeviceCount)
			return err
		}),
	}

	var tr vuln.TransitionRequest
	stage := &cobra.Command{
		Use:   "stage ID STAGE [--reason TEXT] [--duplicate-of ID]",
		Short: "Move a vulnerability to another stage (" + strings.Join(stageNames(), ", ") + ")",
		Args:  cobra.ExactArgs(2),
		RunE: o.run(func(s *session, args []string) error {
			tr.To = vuln.Stage(args[1])
			return s.vulnChange(args[0], "POST", "/transition", tr)
		}),
	}
	stage.Flags().StringVar(&tr.Reason, "reason", "", "why (required to reject and to re-open)")
	stage.Flags().StringVar(&tr.DuplicateOf, "duplicate-of", "", "the vulnerability this one duplicates")

	var own vuln.OwnershipRequest
	owner := &cobra.Command{
		Use:   "owner ID --owner USER [--deputy USER] [--chain USER,USER]",
		Short: "Set who handles a vulnerability and whom breached deadlines escalate to",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(s *session, args []string) error {
			return s.vulnChange(args[0], "PUT", "/ownership", own)
		}),
	}
	owner.Flags().StringVar(&own.OwnerID, "owner", "", "user id of the owner")
	owner.Flags().StringVar(&own.DeputyID, "deputy", "", "user id of the deputy")
	owner.Flags().StringSliceVar(&own.EscalationChain, "chain", nil, "user ids escalated to after owner and deputy, in order")

	var ar vuln.AssessRequest
	var exploitation, exposure, humanImpact, override string
	assess := &cobra.Command{
		Use: "assess ID [--cvss VECTOR]… --exploitation none|public-poc|active --exposure small|controlled|open " +
			"[--automatable] --human-impact low|medium|high|very-high [--known-exploited]",
		Short: "Record CVSS and SSVC deployer inputs; the SSVC decision sets the priority and the SLA clocks",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(s *session, args []string) error {
			ar.SSVC.Exploitation, ar.SSVC.Exposure = scoring.Exploitation(exploitation), scoring.Exposure(exposure)
			ar.SSVC.HumanImpact, ar.PriorityOverride = scoring.HumanImpact(humanImpact), scoring.Priority(override)
			return s.vulnChange(args[0], "POST", "/assessment", ar)
		}),
	}
	af := assess.Flags()
	af.StringArrayVar(&ar.CVSS, "cvss", nil, "a CVSS 3.x or 4.0 vector (repeat for both)")
	af.StringVar(&exploitation, "exploitation", "", "SSVC exploitation: none, public-poc or active")
	af.StringVar(&exposure, "exposure", "", "SSVC system exposure: small, controlled or open")
	af.BoolVar(&ar.SSVC.Automatable, "automatable", false, "SSVC automatable: an attacker can automate steps 1–4 of the kill chain")
	af.StringVar(&humanImpact, "human-impact", "", "SSVC human impact: low, medium, high or very-high")
	af.BoolVar(&ar.KnownExploited, "known-exploited", false, "reliable evidence of active exploitation (starts the EU CRA clocks)")
	af.StringVar(&override, "priority", "", "raise the priority above the SSVC decision (needs --reason)")
	af.StringVar(&ar.OverrideReason, "reason", "", "why the priority is raised")

	var risk vuln.AcceptRiskRequest
	var expires string
	accept := &cobra.Command{
		Use:   "accept-risk ID --approver USER --justification TEXT --expires 2027-03-31",
		Short: "Accept a vulnerability's risk until a date; it returns to remediation then",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(s *session, args []string) error {
			t, err := time.Parse(time.DateOnly, expires)
			if err != nil {
				return fmt.Errorf("--expires %q: give a date as YYYY-MM-DD", expires)
			}
			risk.ExpiresAt = t.UTC()
			return s.vulnChange(args[0], "POST", "/risk-acceptance", risk)
		}),
	}
	accept.Flags().StringVar(&risk.ApproverID, "approver", "", "user id of the approver (may accept risk)")
	accept.Flags().StringVar(&risk.Justification, "justification", "", "why the risk is acceptable")
	accept.Flags().StringVar(&expires, "expires", "", "when the acceptance ends (required)")
	for _, f := range []string{"approver", "justification", "expires"} {
		_ = accept.MarkFlagRequired(f)
	}

	var revoke vuln.RevokeRiskRequest
	revokeCmd := &cobra.Command{
		Use:   "revoke-risk ID --reason TEXT",
		Short: "End a risk acceptance early",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(s *session, args []string) error {
			return s.vulnChange(args[0], "POST", "/risk-acceptance/revoke", revoke)
		}),
	}
	revokeCmd.Flags().StringVar(&revoke.Reason, "reason", "", "why")

	var cra vuln.CRASubmission
	craCmd := &cobra.Command{
		Use:   "cra ID early-warning|notification|final-report [--reference REF]",
		Short: "Record that an EU CRA Art. 14 report was submitted",
		Args:  cobra.ExactArgs(2),
		RunE: o.run(func(s *session, args []string) error {
			cra.Report = args[1]
			return s.vulnChange(args[0], "POST", "/cra-reports", cra)
		}),
	}
	craCmd.Flags().StringVar(&cra.Reference, "reference", "", "the submission's reference at the reporting platform")

	cmd.AddCommand(imp, list, worklist, show, affected, stage, owner, assess, accept, revokeCmd, craCmd)
	return cmd
}

func (s *session) vulnChange(ref, method, suffix string, body any) error {
	path, err := s.orgPath("/vulnerabilities/" + url.PathEscape(ref) + suffix)
	if err != nil {
		return err
	}
	var v vuln.Vulnerability
	raw, err := s.sendJSON(s.ctx, method, path, body, &v)
	if err != nil {
		return err
	}
	if s.json {
		return s.printJSON(raw)
	}
	return printVuln(s, v)
}

func stageNames() []string {
	return []string{"acknowledged", "triaging", "confirmed", "rejected", "duplicate", "remediation", "fix-released", "disclosed", "closed"}
}

// nextDeadline is the earliest open SLA or CRA clock.
func nextDeadline(v vuln.Vulnerability) string {
	var best *vuln.Deadline
	var name string
	consider := func(n string, d *vuln.Deadline) {
		if d == nil || d.Due == nil || (d.State != "running" && d.State != "breached") {
			return
		}
		if best == nil || d.Due.Before(*best.Due) {
			best, name = d, n
		}
	}
	consider("acknowledge", v.SLA.Acknowledge)
	consider("triage", v.SLA.Triage)
	consider("remediation", v.SLA.Remediation)
	if v.CRA != nil && v.CRA.Applies {
		consider("CRA early warning", &v.CRA.EarlyWarning.Deadline)
		consider("CRA notification", &v.CRA.Notification.Deadline)
		consider("CRA final report", &v.CRA.FinalReport.Deadline)
	}
	if best == nil {
		return "-"
	}
	return fmt.Sprintf("%s %s (%s)", name, best.Due.Format("2006-01-02 15:04"), best.State)
}

func printVuln(s *session, v vuln.Vulnerability) error {
	w := s.out
	fmt.Fprintf(w, "vulnerability: %s (%s)\naliases:       %s\nsummary:       %s\nstage:         %s", v.VulnID, v.ID,
		orDash(strings.Join(v.Aliases, ", ")), v.Summary, v.Stage)
	if v.StageReason != "" {
		fmt.Fprintf(w, " (%s)", v.StageReason)
	}
	fmt.Fprintf(w, "\npriority:      %s\nexploited:     %s\nowner:         %s  deputy: %s  chain: %s\n",
		orDash(string(v.Priority)), yesNo(v.KnownExploited), orDash(v.OwnerID), orDash(v.DeputyID), orDash(strings.Join(v.EscalationChain, ", ")))
	if a := v.Assessment; a != nil {
		for _, c := range a.CVSS {
			fmt.Fprintf(w, "CVSS %s:      %.1f %s  %s\n", c.Version, c.BaseScore, c.Severity, c.Vector)
		}
		fmt.Fprintf(w, "SSVC:          exploitation %s, exposure %s, automatable %s, human impact %s → %s\n",
			a.SSVC.Exploitation, a.SSVC.Exposure, yesNo(a.SSVC.Automatable), a.SSVC.HumanImpact, a.SSVCPriority)
	}
	fmt.Fprintf(w, "SLA class:     %s\n", orDash(string(v.SLA.Class)))
	for _, c := range []struct {
		name string
		d    *vuln.Deadline
	}{{"acknowledge", v.SLA.Acknowledge}, {"triage", v.SLA.Triage}, {"remediation", v.SLA.Remediation}} {
		if c.d != nil {
			fmt.Fprintf(w, "  %-12s %-9s due %s\n", c.name, c.d.State, optTime(c.d.Due, "-"))
		}
	}
	if v.Escalation.Level > 0 {
		fmt.Fprintf(w, "escalated:     level %d at %s\n", v.Escalation.Level, optTime(v.Escalation.EscalatedAt, "-"))
	}
	if r := v.RiskAcceptance; r != nil {
		fmt.Fprintf(w, "risk accepted: by %s until %s: %s\n", r.ApproverEmail, r.ExpiresAt.Format(time.DateOnly), r.Justification)
	}
	if c := v.CRA; c != nil && c.Applies {
		fmt.Fprintf(w, "EU CRA (aware %s):\n", c.AwareAt.Format("2006-01-02 15:04"))
		for _, r := range []struct {
			name string
			r    vuln.CRAReport
		}{{"early warning", c.EarlyWarning}, {"notification", c.Notification}, {"final report", c.FinalReport}} {
			fmt.Fprintf(w, "  %-14s %-9s due %s\n", r.name, r.r.State, optTime(r.r.Due, "-"))
		}
	}
	return nil
}
