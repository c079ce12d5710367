package ctl

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/steward-iot/steward/internal/id"
	"github.com/steward-iot/steward/internal/release"
)

// shownFixes bounds the vulnerability ids `releases list` prints per
// release; `releases show` and --json have all of them.
const shownFixes = 3

func releasesCommand(o *options) *cobra.Command {
	cmd := &cobra.Command{Use: "releases", Short: "Create, list and inspect releases of products"}

	var (
		req       release.CreateReleaseRequest
		artifacts []string
		deltas    []string
		sbomArg   string
		progress  bool
	)
	create := &cobra.Command{
		Use: "create --product P --version V --artifact FILE|ID [--artifact ...] [--delta FILE|ID:PRECURSOR_SHA256]... " +
			"[--sbom FILE|ID] [--notes TEXT] [--security-fix] [--fixes CVE-...,...]",
		Short: "Upload a release's files and create the release with the product's next release counter",
		Long: `Create a release of a product: its full images (--artifact), binary deltas
from an installed image (--delta FILE:SHA256, the SHA-256 of the image the
delta applies to), and optionally an SBOM (CycloneDX or SPDX JSON) whose
components the server records.

Each FILE is uploaded first, as 'ctl artifacts upload' does; an argument
that is not an existing file but an artifact id (a UUID) names an artifact
uploaded before. The server gives the release the product's next release
counter; devices refuse releases with a lower counter than they run.`,
		Args: cobra.NoArgs,
		RunE: o.run(func(s *session, _ []string) error {
			var srcs []source
			for _, a := range artifacts {
				src, err := resolveSource("--artifact", a)
				if err != nil {
					return err
				}
				srcs = append(srcs, src)
			}
			for _, d := range deltas {
				arg, precursor, found := cutLast(d, ":")
				if !found || len(precursor) != 64 || !isHex(precursor) {
					return fmt.Errorf("--delta %q is not FILE:PRECURSOR_SHA256 (FILE or an artifact id, then the 64-hex SHA-256 of the image the delta applies to)", d)
				}
				src, err := resolveSource("--delta", arg)
				if err != nil {
					return err
				}
				src.kind, src.precursor = release.KindDelta, strings.ToLower(precursor)
				srcs = append(srcs, src)
			}
			var sbom *source
			if sbomArg != "" {
				src, err := resolveSource("--sbom", sbomArg)
				if err != nil {
					return err
				}
				sbom = &src
			}

			// An unknown product fails before gigabytes are uploaded for nothing.
			prodPath, err := s.orgPath("/products/" + url.PathEscape(req.Product))
			if err != nil {
				return err
			}
			if _, err := s.get(s.ctx, prodPath, nil, nil); err != nil {
				return err
			}

			show := showProgress(s, progress)
			var uploaded []string
			byPath := map[string]string{} // a file named twice is uploaded once
			upload := func(src *source) error {
				if src.id != "" {
					return nil
				}
				if id, ok := byPath[src.arg]; ok {
					src.id = id
					uploaded = append(uploaded, src.flag+" "+id)
					return nil
				}
				a, _, created, err := uploadArtifact(s, src.arg, "", show)
				if err != nil {
					return fmt.Errorf("%s %s: %w", src.flag, src.arg, err)
				}
				fmt.Fprintf(s.errOut, "%s: %s\n", src.arg, describeUpload(a, created))
				src.id, byPath[src.arg] = a.ID, a.ID
				uploaded = append(uploaded, src.flag+" "+a.ID)
				return nil
			}
			for i := range srcs {
				if err := upload(&srcs[i]); err != nil {
					return withUploaded(err, uploaded)
				}
			}
			if sbom != nil {
				if err := upload(sbom); err != nil {
					return withUploaded(err, uploaded)
				}
				req.SBOM = sbom.id
			}

			req.Artifacts = nil
			for _, src := range srcs {
				req.Artifacts = append(req.Artifacts, release.ArtifactRef{ID: src.id, Kind: src.kind, PrecursorSHA256: src.precursor})
			}
			path, err := s.orgPath("/releases")
			if err != nil {
				return err
			}
			var r release.Release
			raw, err := s.create(s.ctx, path, req, &r)
			if err != nil {
				return withUploaded(err, uploaded)
			}
			if s.json {
				return s.printJSON(raw)
			}
			return printRelease(s, r)
		}),
	}
	f := create.Flags()
	f.StringVar(&req.Product, "product", "", "the product's slug or id")
	f.StringVar(&req.Version, "version", "", "the version, e.g. 2.4.0")
	f.StringArrayVar(&artifacts, "artifact", nil, "a full image: a FILE to upload or the id of an uploaded artifact; repeat for more")
	f.StringArrayVar(&deltas, "delta", nil, "a delta: FILE:PRECURSOR_SHA256 (or ID:PRECURSOR_SHA256); repeat for more")
	f.StringVar(&sbomArg, "sbom", "", "the release's SBOM (CycloneDX or SPDX JSON): a FILE or an artifact id")
	f.StringVar(&req.Notes, "notes", "", "release notes")
	f.BoolVar(&req.SecurityFix, "security-fix", false, "the release fixes security vulnerabilities")
	f.StringSliceVar(&req.Fixes, "fixes", nil, "vulnerability ids the release fixes, comma-separated: CVE-2024-1234,GHSA-...")
	f.BoolVar(&progress, "progress", false, "show upload progress on stderr even when it is not a terminal")
	for _, n := range []string{"product", "version", "artifact"} {
		_ = create.MarkFlagRequired(n)
	}

	var (
		product string
		limit   int
	)
	list := &cobra.Command{
		Use:   "list [--product P] [--limit N]",
		Short: "List releases, oldest first",
		Args:  cobra.NoArgs,
		RunE: o.run(func(s *session, _ []string) error {
			path, err := s.orgPath("/releases")
			if err != nil {
				return err
			}
			q := url.Values{}
			if product != "" {
				q.Set("product", product)
			}
			raw, rs, err := fetchAll[release.Release](s, path, q, limit)
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSONList(raw)
			}
			t := newTable(s.out, "ID", "PRODUCT", "VERSION", "COUNTER", "SECURITY FIX", "FIXES", "COMPONENTS", "CREATED")
			for _, r := range rs {
				t.row(r.ID, r.Product, r.Version, strconv.FormatInt(r.Counter, 10), yesNo(r.SecurityFix), fixesSummary(r.Fixes),
					strconv.Itoa(r.Components), timestamp(r.CreatedAt))
			}
			return t.flush()
		}),
	}
	list.Flags().StringVar(&product, "product", "", "only releases of this product (slug or id)")
	list.Flags().IntVar(&limit, "limit", 0, "list at most this many (default: all)")

	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show one release with its artifacts",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(s *session, args []string) error {
			path, err := s.orgPath("/releases/" + url.PathEscape(args[0]))
			if err != nil {
				return err
			}
			var r release.Release
			raw, err := s.get(s.ctx, path, nil, &r)
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSON(raw)
			}
			return printRelease(s, r)
		}),
	}

	components := &cobra.Command{
		Use:   "components ID",
		Short: "List the software components a release's SBOM names",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(s *session, args []string) error {
			path, err := s.orgPath("/releases/" + url.PathEscape(args[0]) + "/components")
			if err != nil {
				return err
			}
			var cs []release.Component
			raw, err := s.get(s.ctx, path, nil, &cs)
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSON(raw)
			}
			t := newTable(s.out, "PURL", "NAME", "VERSION", "SOURCE")
			for _, c := range cs {
				t.row(orDash(c.Purl), c.Name, c.Version, orDash(strings.TrimSpace(c.SourceName+" "+c.SourceVersion)))
			}
			return t.flush()
		}),
	}

	cmd.AddCommand(create, list, show, components)
	return cmd
}

// source is a release input named on the command line: a file to upload,
// or an artifact uploaded before.
type source struct {
	flag, arg string
	id        string // the artifact's id; empty for a file not yet uploaded
	kind      string
	precursor string
}

// resolveSource decides whether arg is a file or an artifact id. A file
// wins over an id of the same name.
func resolveSource(flag, arg string) (source, error) {
	src := source{flag: flag, arg: arg}
	fi, err := os.Stat(arg)
	switch {
	case err == nil && fi.Mode().IsRegular():
		return src, nil
	case err == nil:
		return src, fmt.Errorf("%s %s is not a regular file", flag, arg)
	case errors.Is(err, fs.ErrNotExist) && id.Valid(arg):
		src.id = arg
		return src, nil
	case errors.Is(err, fs.ErrNotExist):
		return src, fmt.Errorf("%s %s: no such file, and not an artifact id", flag, arg)
	}
	return src, fmt.Errorf("%s: %w", flag, err)
}

// withUploaded adds to a failure after uploads how to retry without
// uploading the same files again.
func withUploaded(err error, uploaded []string) error {
	if len(uploaded) == 0 {
		return err
	}
	return fmt.Errorf("%w\nthe files were uploaded; to retry without uploading them again, give the artifact ids instead: %s",
		err, strings.Join(uploaded, " "))
}

func printRelease(s *session, r release.Release) error {
	t := newTable(s.out)
	t.row("id:", r.ID)
	t.row("product:", r.Product)
	t.row("version:", r.Version)
	t.row("release counter:", strconv.FormatInt(r.Counter, 10))
	t.row("security fix:", yesNo(r.SecurityFix))
	t.row("fixes:", orNone(strings.Join(r.Fixes, ", ")))
	if r.SBOMArtifact != "" {
		t.row("sbom:", r.SBOMArtifact+" ("+orDash(r.SBOMFormat)+")")
	} else {
		t.row("sbom:", "none")
	}
	t.row("components:", strconv.Itoa(r.Components))
	if r.Notes != "" {
		t.row("notes:", r.Notes)
	}
	t.row("created:", timestamp(r.CreatedAt)+" by "+r.CreatedBy)
	t.row("artifacts:", strconv.Itoa(len(r.Artifacts)))
	if err := t.flush(); err != nil {
		return err
	}
	if len(r.Artifacts) == 0 {
		return nil
	}
	fmt.Fprintln(s.out)
	t = newTable(s.out, "ARTIFACT", "KIND", "NAME", "SIZE", "SHA256", "PRECURSOR SHA256")
	for _, a := range r.Artifacts {
		t.row(a.ID, a.Kind, a.Name, bytesIEC(a.Size), a.SHA256, orDash(a.PrecursorSHA256))
	}
	return t.flush()
}

func fixesSummary(fixes []string) string {
	if len(fixes) <= shownFixes {
		return orDash(strings.Join(fixes, ","))
	}
	return strings.Join(fixes[:shownFixes], ",") + fmt.Sprintf(" +%d more", len(fixes)-shownFixes)
}

// cutLast slices s around the last sep.
func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}
