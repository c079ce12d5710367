package ctl

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/steward-iot/steward/internal/release"
)

func artifactsCommand(o *options) *cobra.Command {
	cmd := &cobra.Command{Use: "artifacts", Short: "Upload, list, show and download release artifacts (images, SBOMs)"}

	var name string
	var progress bool
	upload := &cobra.Command{
		Use:   "upload FILE [--name NAME] [--progress]",
		Short: "Upload a file as an artifact",
		Long: `Upload a file (a firmware image, a delta, an SBOM) to the organization's
content-addressed artifact store. ctl reads the file twice and never holds
it in memory: once to compute its SHA-256, then to send it, and the server
keeps nothing unless the bytes it received have that SHA-256. Uploading
content that is already stored returns the existing artifact.

Progress is shown on stderr when it is a terminal, or with --progress.
--timeout limits each silence of the transfer, not the whole upload.`,
		Args: cobra.ExactArgs(1),
		RunE: o.run(func(s *session, args []string) error {
			a, raw, created, err := uploadArtifact(s, args[0], name, showProgress(s, progress))
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSON(raw)
			}
			_, err = fmt.Fprintln(s.out, describeUpload(a, created))
			return err
		}),
	}
	upload.Flags().StringVar(&name, "name", "", "the artifact's name (default: the file's base name)")
	upload.Flags().BoolVar(&progress, "progress", false, "show progress on stderr even when it is not a terminal")

	var limit int
	list := &cobra.Command{
		Use:   "list",
		Short: "List the organization's artifacts",
		Args:  cobra.NoArgs,
		RunE: o.run(func(s *session, _ []string) error {
			path, err := s.orgPath("/artifacts")
			if err != nil {
				return err
			}
			raw, as, err := fetchAll[release.Artifact](s, path, nil, limit)
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSONList(raw)
			}
			t := newTable(s.out, "ID", "NAME", "SIZE", "SHA256", "CREATED")
			for _, a := range as {
				t.row(a.ID, a.Name, bytesIEC(a.Size), a.SHA256, timestamp(a.CreatedAt))
			}
			return t.flush()
		}),
	}
	list.Flags().IntVar(&limit, "limit", 0, "list at most this many (default: all)")

	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show one artifact",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(s *session, args []string) error {
			a, raw, err := getArtifact(s, args[0])
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSON(raw)
			}
			t := newTable(s.out)
			t.row("id:", a.ID)
			t.row("name:", a.Name)
			t.row("size:", strconv.FormatInt(a.Size, 10)+" bytes ("+bytesIEC(a.Size)+")")
			t.row("sha256:", a.SHA256)
			t.row("sha512:", a.SHA512)
			t.row("created:", timestamp(a.CreatedAt)+" by "+a.CreatedBy)
			return t.flush()
		}),
	}

	var output string
	var dlProgress bool
	download := &cobra.Command{
		Use:   "download ID [-o FILE] [--progress]",
		Short: "Download an artifact, resuming an interrupted download, and verify its SHA-256",
		Long: `Download an artifact to FILE (default: the artifact's name in the current
directory). The bytes go to FILE.part, which becomes FILE only once its
SHA-256 matches the artifact's; an interrupted download leaves FILE.part,
and the next download of the same artifact to the same FILE resumes from
its end. A FILE that already holds the artifact is left as it is.

Progress is shown on stderr when it is a terminal, or with --progress.
--timeout limits each silence of the transfer, not the whole download.`,
		Args: cobra.ExactArgs(1),
		RunE: o.run(func(s *session, args []string) error {
			a, raw, err := getArtifact(s, args[0])
			if err != nil {
				return err
			}
			dest := output
			if dest == "" {
				if !safeFileName(a.Name) {
					return fmt.Errorf("the artifact's name %q is not a plain file name; choose one with -o FILE", clean(a.Name))
				}
				dest = a.Name
			}
			msg, err := downloadArtifact(s, a, dest, showProgress(s, dlProgress))
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSON(raw)
			}
			_, err = fmt.Fprintln(s.out, msg)
			return err
		}),
	}
	download.Flags().StringVarP(&output, "output", "o", "", "where to save it (default: the artifact's name)")
	download.Flags().BoolVar(&dlProgress, "progress", false, "show progress on stderr even when it is not a terminal")

	cmd.AddCommand(upload, list, show, download)
	return cmd
}

func getArtifact(s *session, id string) (release.Artifact, json.RawMessage, error) {
	var a release.Artifact
	path, err := s.orgPath("/artifacts/" + url.PathEscape(id))
	if err != nil {
		return a, nil, err
	}
	raw, err := s.get(s.ctx, path, nil, &a)
	return a, raw, err
}

func describeUpload(a release.Artifact, created bool) string {
	what := "uploaded artifact "
	if !created {
		what = "already uploaded as artifact "
	}
	return what + clean(a.ID) + ": " + clean(a.Name) + ", " + bytesIEC(a.Size) + ", sha256 " + clean(a.SHA256)
}

// uploadArtifact uploads the file at path as an artifact named name
// (default: the file's base name) and reports whether the server stored
// it anew (201) or already had the content (200). The file is read twice
// and never held in memory: once for its SHA-256, then as the request
// body; the server keeps the upload only if it has that SHA-256, so a
// file changed in between, or bytes damaged on the way, are refused.
func uploadArtifact(s *session, path, name string, progress bool) (a release.Artifact, raw json.RawMessage, created bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return a, nil, false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return a, nil, false, err
	}
	if !fi.Mode().IsRegular() {
		return a, nil, false, fmt.Errorf("%s is not a regular file", path)
	}
	if name == "" {
		name = filepath.Base(path)
	}

	h := sha256.New()
	hm := newMeter(s, progress, "sha256 "+name, fi.Size(), 0)
	size, err := io.Copy(h, &watchedReader{r: f, progress: hm.add})
	hm.finish()
	if err != nil {
		return a, nil, false, fmt.Errorf("reading %s: %w", path, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))

	apath, err := s.orgPath("/artifacts")
	if err != nil {
		return a, nil, false, err
	}
	t := s.newTransfer(s.ctx)
	defer t.close()
	req, err := s.request(t.ctx, http.MethodPost, apath, url.Values{"name": {name}, "sha256": {sum}}, nil)
	if err != nil {
		return a, nil, false, err
	}
	m := newMeter(s, progress, "upload "+name, size, 0)
	// The bytes hashed, however the file changes meanwhile; a SectionReader
	// also lets the transport resend them if a reused connection fails.
	body := func() io.ReadCloser {
		if size == 0 {
			return http.NoBody // a non-nil body of length 0 would be sent chunked
		}
		return io.NopCloser(&watchedReader{r: io.NewSectionReader(f, 0, size), progress: func(n int) {
			t.moved()
			m.add(n)
		}})
	}
	req.Body, req.ContentLength = body(), size
	req.GetBody = func() (io.ReadCloser, error) {
		m.restart(0)
		return body(), nil
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := t.do(req, func() error {
		return fmt.Errorf("uploading %s to the Steward server at %s: nothing moved for %s; check --server, or raise --timeout",
			path, s.base, t.idle)
	})
	m.finish()
	if err != nil {
		return a, nil, false, err
	}
	raw, err = s.readJSON(req, resp, &a)
	if err != nil {
		if t.stalled() {
			return a, nil, false, fmt.Errorf("uploading %s: the Steward server at %s sent no answer for %s; check --server, or raise --timeout",
				path, s.base, t.idle)
		}
		return a, nil, false, err
	}
	if a.SHA256 != sum {
		return a, nil, false, fmt.Errorf("the server recorded artifact %s with sha256 %s, but %s has sha256 %s",
			clean(a.ID), clean(a.SHA256), path, sum)
	}
	return a, raw, resp.StatusCode == http.StatusCreated, nil
}

// safeFileName reports whether name, from the server, can be used as a
// file name in the current directory without escaping it or hiding.
func safeFileName(name string) bool {
	return name != "" && filepath.Base(name) == name && !strings.ContainsAny(name, `/\:`) &&
		!strings.HasPrefix(name, ".") && clean(name) == name
}

// downloadArtifact downloads a to dest by way of dest.part, resuming from
// what dest.part already holds, and renames it to dest only once its
// SHA-256 is the artifact's. It returns what to tell the user.
func downloadArtifact(s *session, a release.Artifact, dest string, progress bool) (string, error) {
	if len(a.SHA256) != sha256.Size*2 || a.Size < 0 {
		return "", fmt.Errorf("the server described artifact %s with sha256 %q and size %d; is --server pointing at a Steward server?",
			clean(a.ID), clean(a.SHA256), a.Size)
	}
	if fi, err := os.Stat(dest); err == nil && fi.Mode().IsRegular() && fi.Size() == a.Size {
		sum, err := hashFile(s, dest, progress)
		if err != nil {
			return "", err
		}
		if sum == a.SHA256 {
			return fmt.Sprintf("%s already holds artifact %s (%s, sha256 verified)", dest, clean(a.ID), bytesIEC(a.Size)), nil
		}
	}

	part := dest + ".part"
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return "", err
	}
	defer f.Close() // again, harmlessly, after the explicit Close below
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	have := fi.Size()
	if have > a.Size { // not a prefix of this artifact
		if err := f.Truncate(0); err != nil {
			return "", err
		}
		have = 0
	}
	// Hash what is there already, so the finished file need not be read again.
	h := sha256.New()
	if have > 0 {
		if _, err := io.Copy(h, io.NewSectionReader(f, 0, have)); err != nil {
			return "", fmt.Errorf("reading %s: %w", part, err)
		}
	}
	resumed := have
	if have < a.Size {
		if resumed, err = fetchArtifact(s, a, f, h, have, part, progress); err != nil {
			return "", err
		}
	}

	if err := f.Sync(); err != nil {
		return "", err
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != a.SHA256 {
		f.Close()
		rmErr := os.Remove(part)
		msg := fmt.Sprintf("the downloaded bytes have sha256 %s, but artifact %s has sha256 %s", sum, clean(a.ID), a.SHA256)
		if resumed > 0 {
			msg += fmt.Sprintf("; the first %d bytes came from an earlier, different or damaged download", resumed)
		}
		if rmErr != nil {
			return "", fmt.Errorf("%s; delete %s and download again (%v)", msg, part, rmErr)
		}
		return "", fmt.Errorf("%s; %s was deleted and %s not written: download again", msg, part, dest)
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(part, dest); err != nil {
		return "", err
	}
	msg := fmt.Sprintf("downloaded artifact %s to %s (%s, sha256 verified)", clean(a.ID), dest, bytesIEC(a.Size))
	if resumed > 0 {
		msg += fmt.Sprintf("; resumed after %d bytes", resumed)
	}
	return msg, nil
}

// fetchArtifact writes the artifact's content from byte have on to f
// (positioned by this function) and h. It asks for a range when have > 0,
// with If-Range so that a server whose content differs sends it whole;
// it returns how many bytes were kept from before (0 when the server sent
// everything).
func fetchArtifact(s *session, a release.Artifact, f *os.File, h hash.Hash, have int64, part string, progress bool) (int64, error) {
	path, err := s.orgPath("/artifacts/" + url.PathEscape(a.ID) + "/content")
	if err != nil {
		return 0, err
	}
	t := s.newTransfer(s.ctx)
	defer t.close()
	req, err := s.request(t.ctx, http.MethodGet, path, nil, nil)
	if err != nil {
		return 0, err
	}
	const octets = "application/octet-stream"
	req.Header.Set("Accept", octets+", application/problem+json")
	if have > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(have, 10)+"-")
		req.Header.Set("If-Range", `"`+a.SHA256+`"`) // the server's ETag
	}
	resume := func() string {
		return fmt.Sprintf("%s is kept: download again to resume", part)
	}
	stalled := func() error {
		return fmt.Errorf("the Steward server at %s sent nothing for %s; check --server, or raise --timeout", s.base, t.idle)
	}
	resp, err := t.do(req, stalled)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if err := s.checkStream(req, resp, octets); err != nil {
		return 0, err
	}
	switch resp.StatusCode {
	case http.StatusPartialContent:
		var start, end, total int64
		cr := resp.Header.Get("Content-Range")
		if _, err := fmt.Sscanf(cr, "bytes %d-%d/%d", &start, &end, &total); err != nil || start != have || total != a.Size {
			return 0, fmt.Errorf("the server answered a request for bytes %d- of artifact %s with Content-Range %q", have, clean(a.ID), clean(cr))
		}
	case http.StatusOK: // the whole content
		if have > 0 {
			if err := f.Truncate(0); err != nil {
				return 0, err
			}
			h.Reset()
			have = 0
		}
	default:
		return 0, fmt.Errorf("the server answered the download of artifact %s with %s", clean(a.ID), resp.Status)
	}
	if _, err := f.Seek(have, io.SeekStart); err != nil {
		return 0, err
	}

	m := newMeter(s, progress, "download "+a.Name, a.Size, have)
	// One byte more than the artifact can hold reveals a server sending too much.
	body := &watchedReader{r: io.LimitReader(resp.Body, a.Size-have+1), progress: func(n int) {
		t.moved()
		m.add(n)
	}}
	n, err := io.Copy(io.MultiWriter(f, h), body)
	m.finish()
	got := have + n
	switch {
	case err == nil && got > a.Size:
		return have, fmt.Errorf("the server sent more than the %d bytes of artifact %s", a.Size, clean(a.ID)) // the hash check would fail too
	case err == nil && got < a.Size:
		return have, fmt.Errorf("the download of artifact %s ended after %d of %d bytes; %s", clean(a.ID), got, a.Size, resume())
	case err == nil:
		return have, nil
	case body.err == nil: // the file failed
		return have, fmt.Errorf("writing %s: %w; %s", part, err, resume())
	case t.stalled():
		return have, fmt.Errorf("%w; %d of %d bytes arrived; %s", stalled(), got, a.Size, resume())
	case s.ctx.Err() != nil:
		return have, fmt.Errorf("the download was interrupted (%w); %s", s.ctx.Err(), resume())
	}
	return have, fmt.Errorf("the download of artifact %s from %s broke off after %d of %d bytes (%v); %s",
		clean(a.ID), s.base, got, a.Size, body.err, resume())
}

// hashFile returns the SHA-256 of the file at path.
func hashFile(s *session, path string, progress bool) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	m := newMeter(s, progress, "sha256 "+filepath.Base(path), fi.Size(), 0)
	_, err = io.Copy(h, &watchedReader{r: f, progress: m.add})
	m.finish()
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
