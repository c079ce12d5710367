package ctl

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"github.com/steward-iot/steward/agent/atomicfile"
	"github.com/steward-iot/steward/internal/id"
	"github.com/steward-iot/steward/internal/release"
	"github.com/steward-iot/steward/internal/tlog"
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

	cmd.AddCommand(create, list, show, components, verifyCommand(o), logKeyCommand(o))
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

func verifyCommand(o *options) *cobra.Command {
	var v verifier
	cmd := &cobra.Command{
		Use:   "verify ID [--log-key KEY | --log-key-file FILE] [--state FILE]",
		Short: "Check that a release is in its organization's transparency log, under a checkpoint signed by the log's key",
		Long: `Verify that a release is recorded in the organization's transparency log,
the way a device or auditor would, trusting nothing the server says without
proof:

  1. the log's latest checkpoint carries a valid signature by the log key;
  2. with --state FILE, that checkpoint extends the one FILE holds from an
     earlier run (a consistency proof: the log was neither rewritten nor
     forked since), and FILE is updated to it;
  3. the log's entry for the release's product and release counter records
     exactly the release the API describes: organization, product, version,
     release counter, and every artifact's name and SHA-256;
  4. an inclusion proof shows that entry is in the checkpoint's tree.

Pin the log key with --log-key or --log-key-file (get it once with
'steward ctl releases log-key' and check it out of band). Without either,
the key is fetched from the server itself, which then vouches for itself:
a warning says so. Exits non-zero, naming the failed check, if any fails.`,
		Args: cobra.ExactArgs(1),
		RunE: o.run(func(s *session, args []string) error { return v.run(s, args[0]) }),
	}
	f := cmd.Flags()
	f.StringVar(&v.key, "log-key", "", "the log's checkpoint verifier key (name+hash+key, as 'releases log-key' prints it)")
	f.StringVar(&v.keyFile, "log-key-file", "", "file holding the log's checkpoint verifier key")
	f.StringVar(&v.state, "state", "", "file keeping the last verified checkpoint: each run checks the log only grew since, then updates it")
	cmd.MarkFlagsMutuallyExclusive("log-key", "log-key-file")
	return cmd
}

func logKeyCommand(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "log-key",
		Short: "Print the key that signs the organization's transparency log checkpoints",
		Long: `Print the verifier key of the organization's transparency log, in the
format 'releases verify --log-key' takes. This is the key as the server
states it: compare it with a copy obtained independently before you pin
it. The log, and its key, start with the organization's first release.`,
		Args: cobra.NoArgs,
		RunE: o.run(func(s *session, _ []string) error {
			if _, err := s.orgPath(""); err != nil {
				return err
			}
			key, err := s.fetchLogKey()
			if err != nil {
				return err
			}
			if s.json {
				b, _ := json.Marshal(map[string]string{"org": s.org, "origin": key.Name(), "key": key.text})
				return s.printJSON(b)
			}
			fmt.Fprintln(s.out, key.text)
			fmt.Fprintf(s.errOut, "This is the key the server says signs the checkpoints of log %s. Check it against a copy "+
				"obtained independently, then pin it: steward ctl releases verify ID --log-key-file FILE\n", key.Name())
			return nil
		}),
	}
}

// verifier runs `releases verify`.
type verifier struct {
	key, keyFile, state string
}

// logKey is a parsed checkpoint verifier key and its text.
type logKey struct {
	note.Verifier
	text string
}

func parseLogKey(text, from string) (logKey, error) {
	text = strings.TrimSpace(text)
	v, err := note.NewVerifier(text)
	if err != nil {
		return logKey{}, fmt.Errorf("%s is not a log verifier key (name+hash+key): %w", from, err)
	}
	return logKey{v, text}, nil
}

// verifyFailed names the check that failed.
func verifyFailed(format string, args ...any) error {
	return fmt.Errorf("verification FAILED: "+format, args...)
}

func (v *verifier) run(s *session, releaseID string) error {
	relPath, err := s.orgPath("/releases/" + url.PathEscape(releaseID))
	if err != nil {
		return err
	}
	var r release.Release
	if _, err := s.get(s.ctx, relPath, nil, &r); err != nil {
		return err
	}
	say := func(format string, args ...any) {
		if !s.json {
			fmt.Fprintf(s.out, format+"\n", args...)
		}
	}
	say("release:     %s: %s %s, release counter %d, %d artifacts", r.ID, r.Product, r.Version, r.Counter, len(r.Artifacts))

	key, pinned, err := v.logKey(s)
	if err != nil {
		return err
	}
	how := "pinned"
	if !pinned {
		how = "NOT pinned: as the server sent it"
	}
	say("log:         %s (key %s)", key.Name(), how)

	// Look the entry up first: the checkpoint fetched after it covers it.
	var found tlog.LookupResponse
	q := url.Values{"product": {r.Product}, "release_counter": {strconv.FormatInt(r.Counter, 10)}}
	b, err := s.fetchLog("/lookup", q)
	if err == nil {
		err = json.Unmarshal(b, &found)
	}
	if err != nil {
		return fmt.Errorf("looking up the release in the transparency log: %w", err)
	}

	cp, err := s.fetchLog("/checkpoint", nil)
	if err != nil {
		return fmt.Errorf("fetching the log's checkpoint: %w", err)
	}
	size, root, err := tlog.VerifyCheckpoint(cp, key, key.Name())
	if err != nil {
		return verifyFailed("the log's checkpoint is not signed by the log key %s: %v", key.Name(), err)
	}
	say("checkpoint:  tree size %d, root %s, signature valid", size, base64.StdEncoding.EncodeToString(root[:]))

	if v.state != "" {
		msg, err := v.checkState(s, key, cp, size, root)
		if err != nil {
			return err
		}
		say("consistency: %s", msg)
	}

	want := release.LogEntry(s.org, r)
	if len(found.Indexes) == 0 {
		return verifyFailed("the log has no entry for %s release counter %d: the release is not in the transparency log", r.Product, r.Counter)
	}
	var (
		index  int64 = -1
		leaf   []byte
		logged tlog.Entry
		why    []string
	)
	for _, i := range found.Indexes {
		if i < 0 || i >= size {
			why = append(why, fmt.Sprintf("entry #%d is beyond the checkpoint's %d entries", i, size))
			continue
		}
		l, err := s.fetchLog("/entries/"+strconv.FormatInt(i, 10), nil)
		if err != nil {
			return fmt.Errorf("fetching log entry #%d: %w", i, err)
		}
		e, err := tlog.ParseEntry(l)
		if err != nil {
			why = append(why, fmt.Sprintf("entry #%d is malformed: %v", i, err))
			continue
		}
		if !tlog.SameExceptTime(e, want) {
			why = append(why, fmt.Sprintf("entry #%d does not match the release: %s", i, entryDiff(e, want)))
			continue
		}
		index, leaf, logged = i, l, e
		break
	}
	if index < 0 {
		return verifyFailed("%s", strings.Join(why, "; "))
	}
	say("entry:       #%d, logged %s, matches the release (org, product, version, counter, %d artifact digests)",
		index, timestamp(logged.LoggedAt), len(want.Artifacts))

	var proof tlog.InclusionResponse
	q = url.Values{"index": {strconv.FormatInt(index, 10)}, "size": {strconv.FormatInt(size, 10)}}
	b, err = s.fetchLog("/proof/inclusion", q)
	if err == nil {
		err = json.Unmarshal(b, &proof)
	}
	if err != nil {
		return fmt.Errorf("fetching the inclusion proof of entry #%d: %w", index, err)
	}
	if err := tlog.VerifyInclusion(leaf, index, size, root, proof.Hashes); err != nil {
		return verifyFailed("the inclusion proof does not prove entry #%d in the signed checkpoint of size %d: "+
			"the entry served is not the one the log committed to (%v)", index, size, err)
	}
	say("inclusion:   entry #%d proven in the tree of size %d", index, size)

	if s.json {
		out, _ := json.Marshal(map[string]any{"release_id": r.ID, "verified": true, "log_origin": key.Name(), "log_key_pinned": pinned,
			"index": index, "tree_size": size, "root_hash": base64.StdEncoding.EncodeToString(root[:]), "logged_at": logged.LoggedAt})
		return s.printJSON(out)
	}
	if pinned {
		say("VERIFIED: release %s is in the transparency log of %s", r.ID, s.org)
	} else {
		say("VERIFIED against a key the server supplied (not pinned): release %s is in the transparency log of %s", r.ID, s.org)
	}
	return nil
}

// logKey returns the pinned key, or the server's with a warning.
func (v *verifier) logKey(s *session) (logKey, bool, error) {
	switch {
	case v.key != "":
		k, err := parseLogKey(v.key, "--log-key")
		return k, true, err
	case v.keyFile != "":
		b, err := os.ReadFile(v.keyFile)
		if err != nil {
			return logKey{}, false, fmt.Errorf("--log-key-file: %w", err)
		}
		k, err := parseLogKey(string(b), "--log-key-file "+v.keyFile)
		return k, true, err
	}
	k, err := s.fetchLogKey()
	if err != nil {
		return logKey{}, false, err
	}
	fmt.Fprintf(s.errOut, "WARNING: no --log-key or --log-key-file: using the log key the server sent, %s. "+
		"This trusts the server to vouch for itself: a server that lies about its log can lie about its key too. "+
		"Check this key out of band and pin it with --log-key-file.\n", k.text)
	return k, false, nil
}

// checkState checks the new checkpoint against the one kept in --state,
// as the Go checksum database client does, and keeps the newer one.
func (v *verifier) checkState(s *session, key logKey, cp []byte, size int64, root tlog.Hash) (string, error) {
	old, err := os.ReadFile(v.state)
	if errors.Is(err, fs.ErrNotExist) {
		if err := atomicfile.WriteFile(v.state, cp, 0o644); err != nil {
			return "", fmt.Errorf("--state: %w", err)
		}
		return "first checkpoint of this log, saved to " + v.state, nil
	}
	if err != nil {
		return "", fmt.Errorf("--state: %w", err)
	}
	oldSize, oldRoot, err := tlog.VerifyCheckpoint(old, key, key.Name())
	if err != nil {
		return "", fmt.Errorf("--state %s does not hold a checkpoint of this log signed by its key: %w", v.state, err)
	}
	if oldSize > size {
		return "", verifyFailed("the log shrank: %s holds a checkpoint of size %d, the server's has size %d: "+
			"the server rolled its log back or shows different clients different logs", v.state, oldSize, size)
	}
	var proof tlog.ConsistencyResponse
	q := url.Values{"old": {strconv.FormatInt(oldSize, 10)}, "new": {strconv.FormatInt(size, 10)}}
	b, err := s.fetchLog("/proof/consistency", q)
	if err == nil {
		err = json.Unmarshal(b, &proof)
	}
	if err != nil {
		return "", fmt.Errorf("fetching the consistency proof from size %d to %d: %w", oldSize, size, err)
	}
	if err := tlog.VerifyConsistency(oldSize, size, oldRoot, root, proof.Hashes); err != nil {
		return "", verifyFailed("the server's checkpoint (size %d) does not extend the one in %s (size %d): "+
			"the log was rewritten or forked (%v)", size, v.state, oldSize, err)
	}
	if size > oldSize {
		if err := atomicfile.WriteFile(v.state, cp, 0o644); err != nil {
			return "", fmt.Errorf("--state: %w", err)
		}
		return fmt.Sprintf("extends the checkpoint of size %d in %s (updated)", oldSize, v.state), nil
	}
	return "same checkpoint as in " + v.state, nil
}

// entryDiff says how a logged release entry differs from the expected one.
func entryDiff(got, want tlog.Entry) string {
	var d []string
	field := func(name, g, w string) {
		if g != w {
			d = append(d, fmt.Sprintf("%s is %q in the log, %q from the API", name, g, w))
		}
	}
	field("kind", got.Kind, want.Kind)
	field("org", got.Org, want.Org)
	field("product", got.Product, want.Product)
	field("version", got.Version, want.Version)
	field("release counter", strconv.FormatInt(got.ReleaseCounter, 10), strconv.FormatInt(want.ReleaseCounter, 10))
	logged := map[string]string{}
	for _, a := range got.Artifacts {
		logged[a.Name] = a.SHA256
	}
	var arts []string
	for _, a := range want.Artifacts {
		sum, ok := logged[a.Name]
		switch {
		case !ok:
			arts = append(arts, fmt.Sprintf("artifact %s is not in the log entry", a.Name))
		case sum != a.SHA256:
			arts = append(arts, fmt.Sprintf("artifact %s has sha256 %s in the log, %s from the API", a.Name, sum, a.SHA256))
		}
		delete(logged, a.Name)
	}
	for name := range logged {
		arts = append(arts, fmt.Sprintf("the log entry lists artifact %s, which the release lacks", name))
	}
	slices.Sort(arts)
	if d = append(d, arts...); len(d) == 0 {
		return "they differ"
	}
	return strings.Join(d, "; ")
}

// fetchLogKey gets the session organization's log key from the server.
func (s *session) fetchLogKey() (logKey, error) {
	b, err := s.fetchLog("/key", nil)
	if err != nil {
		return logKey{}, fmt.Errorf("fetching the transparency log key: %w", err)
	}
	return parseLogKey(string(b), "the key the server sent")
}

// fetchLog GETs a path of the session organization's public transparency
// log (/tlog/{org}/...). The log is public, so no token is sent; the
// answers are raw (checkpoints and keys are text) and bounded in size.
func (s *session) fetchLog(path string, q url.Values) ([]byte, error) {
	u := s.base + "/tlog/" + url.PathEscape(s.org) + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(s.ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", "steward-ctl")
	resp, err := s.hc.Do(req)
	if err != nil {
		return nil, s.transportError(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", req.URL.Path, err)
	}
	if len(body) > maxResponse {
		return nil, fmt.Errorf("the answer to %s is larger than %d MiB", req.URL.Path, maxResponse>>20)
	}
	if resp.StatusCode != http.StatusOK {
		mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		return nil, fmt.Errorf("GET %s: %w", req.URL.Path, responseError(resp.StatusCode, mt, body))
	}
	return body, nil
}
