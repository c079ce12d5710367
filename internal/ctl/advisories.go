package ctl

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/steward-iot/steward/internal/advisory"
)

func advisoriesCommand(o *options) *cobra.Command {
	cmd := &cobra.Command{Use: "advisories", Short: "Draft, review, publish and download security advisories (CSAF 2.0 and VEX)"}

	var limit int
	list := &cobra.Command{
		Use:   "list",
		Short: "List advisories",
		Args:  cobra.NoArgs,
		RunE: o.run(func(s *session, _ []string) error {
			path, err := s.orgPath("/advisories")
			if err != nil {
				return err
			}
			raw, items, err := fetchAll[advisory.Advisory](s, path, nil, limit)
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSONList(raw)
			}
			t := newTable(s.out, "ID", "TRACKING ID", "STATUS", "VERSION", "CHANGES", "TLP", "TITLE")
			for _, a := range items {
				t.row(a.ID, a.TrackingID, string(a.Status), strconv.Itoa(a.Version), yesNo(a.Pending), a.TLP, clip(a.Title, 60))
			}
			return t.flush()
		}),
	}
	list.Flags().IntVar(&limit, "limit", 0, "list at most this many (default: all)")

	show := &cobra.Command{
		Use:   "show ID|TRACKING-ID",
		Short: "Show an advisory with its published versions",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(s *session, args []string) error {
			a, raw, err := s.advisory(args[0])
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSON(raw)
			}
			return printAdvisory(s, a)
		}),
	}

	var fromVuln, file string
	draft := &cobra.Command{
		Use:   "draft (--from-vuln VULNERABILITY | --file DRAFT.json)",
		Short: "Draft an advisory from a vulnerability's assessment and SBOM matching, or from a JSON draft",
		Args:  cobra.NoArgs,
		RunE: o.run(func(s *session, _ []string) error {
			var a advisory.Advisory
			var raw json.RawMessage
			switch {
			case (fromVuln == "") == (file == ""):
				return fmt.Errorf("give exactly one of --from-vuln or --file")
			case fromVuln != "":
				path, err := s.orgPath("/vulnerabilities/" + url.PathEscape(fromVuln) + "/advisory")
				if err != nil {
					return err
				}
				if raw, err = s.sendJSON(s.ctx, "POST", path, nil, &a); err != nil {
					return err
				}
			default:
				d, err := readDraft(file)
				if err != nil {
					return err
				}
				path, err := s.orgPath("/advisories")
				if err != nil {
					return err
				}
				if raw, err = s.create(s.ctx, path, d, &a); err != nil {
					return err
				}
			}
			if s.json {
				return s.printJSON(raw)
			}
			fmt.Fprintf(s.out, "drafted advisory %s (%s); review it with `advisories csaf %s --version 0`, then publish it\n", a.ID, a.TrackingID, a.TrackingID)
			return printAdvisory(s, a)
		}),
	}
	draft.Flags().StringVar(&fromVuln, "from-vuln", "", "vulnerability id or record id")
	draft.Flags().StringVar(&file, "file", "", "a JSON advisory draft")

	update := &cobra.Command{
		Use:   "update ID --file DRAFT.json",
		Short: "Replace an advisory's draft (get it with `show --json`, edit .draft)",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(s *session, args []string) error {
			d, err := readDraft(file)
			if err != nil {
				return err
			}
			path, err := s.orgPath("/advisories/" + url.PathEscape(args[0]))
			if err != nil {
				return err
			}
			var a advisory.Advisory
			raw, err := s.sendJSON(s.ctx, "PUT", path, d, &a)
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSON(raw)
			}
			return printAdvisory(s, a)
		}),
	}
	update.Flags().StringVar(&file, "file", "", "the JSON draft")
	_ = update.MarkFlagRequired("file")

	var summary string
	publish := &cobra.Command{
		Use:   "publish ID [--summary TEXT]",
		Short: "Publish the draft as the next version: signed CSAF advisory and VEX documents; subscribers are notified",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(s *session, args []string) error {
			path, err := s.orgPath("/advisories/" + url.PathEscape(args[0]) + "/publish")
			if err != nil {
				return err
			}
			var v advisory.Version
			raw, err := s.sendJSON(s.ctx, "POST", path, advisory.PublishRequest{Summary: summary}, &v)
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSON(raw)
			}
			fmt.Fprintf(s.out, "published %s version %d (signed by key %s)\n", v.TrackingID, v.Version, v.KeyFingerprint)
			for _, d := range v.Documents {
				fmt.Fprintf(s.out, "  %-24s %s  sha256 %s\n", d.Profile, d.Path, d.SHA256)
			}
			return nil
		}),
	}
	publish.Flags().StringVar(&summary, "summary", "", "revision history entry (default: Initial release / Updated advisory)")

	var version int
	var profile string
	csaf := &cobra.Command{
		Use:   "csaf ID [--version N] [--profile advisory|vex]",
		Short: "Print a CSAF 2.0 document of an advisory (version 0: an unsigned preview of the draft)",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(s *session, args []string) error {
			path, err := s.orgPath("/advisories/" + url.PathEscape(args[0]) + "/csaf")
			if err != nil {
				return err
			}
			q := url.Values{"profile": {profile}}
			if version >= 0 {
				q.Set("version", strconv.Itoa(version))
			}
			raw, err := s.get(s.ctx, path, q, nil)
			if err != nil {
				return err
			}
			_, err = s.out.Write(raw)
			return err
		}),
	}
	csaf.Flags().IntVar(&version, "version", -1, "published version (default: the latest; 0: the draft)")
	csaf.Flags().StringVar(&profile, "profile", "advisory", "advisory (csaf_security_advisory) or vex (csaf_vex)")

	cmd.AddCommand(list, show, draft, update, publish, csaf)
	return cmd
}

func (s *session) advisory(ref string) (advisory.Advisory, json.RawMessage, error) {
	var a advisory.Advisory
	path, err := s.orgPath("/advisories/" + url.PathEscape(ref))
	if err != nil {
		return a, nil, err
	}
	raw, err := s.get(s.ctx, path, nil, &a)
	return a, raw, err
}

func readDraft(file string) (advisory.Draft, error) {
	var d advisory.Draft
	b, err := os.ReadFile(file)
	if err != nil {
		return d, err
	}
	// Accept a draft alone or an advisory as `show --json` prints it.
	var wrapped struct {
		Draft *advisory.Draft `json:"draft"`
	}
	if json.Unmarshal(b, &wrapped) == nil && wrapped.Draft != nil {
		return *wrapped.Draft, nil
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return d, fmt.Errorf("%s is not a JSON advisory draft: %w", file, err)
	}
	return d, nil
}

func printAdvisory(s *session, a advisory.Advisory) error {
	fmt.Fprintf(s.out, "advisory:      %s\ntracking id:   %s\ntitle:         %s\nstatus:        %s (version %d, TLP:%s)\n",
		a.ID, a.TrackingID, a.Title, a.Status, a.Version, a.TLP)
	if a.Pending && a.Version > 0 {
		fmt.Fprintln(s.out, "               the draft has changes not yet published")
	}
	for _, v := range a.Draft.Vulnerabilities {
		id := v.CVE
		if id == "" && len(v.IDs) > 0 {
			id = v.IDs[0].Text
		}
		fmt.Fprintf(s.out, "vulnerability: %s\n  known affected:  %d product versions\n  fixed:           %d\n  not affected:    %d\n  investigating:   %d\n",
			id, len(v.KnownAffected), len(v.Fixed), len(v.KnownNotAffected), len(v.UnderInvestigation))
		for _, r := range v.Remediations {
			fmt.Fprintf(s.out, "  remediation (%s): %s\n", r.Category, r.Details)
		}
	}
	for _, v := range a.Versions {
		fmt.Fprintf(s.out, "version %d released %s by %s\n", v.Version, v.ReleasedAt.Format("2006-01-02 15:04Z07:00"), v.PublishedBy.Name)
	}
	return nil
}
