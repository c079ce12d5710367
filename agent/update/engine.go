package update

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"

	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"github.com/steward-iot/steward/agent/crashpoint"
	"github.com/steward-iot/steward/agent/delta"
)

// Errors Fetch returns besides Agree's and Download's.
var (
	ErrNoUpdate     = errors.New("the director names nothing to install")
	ErrNoFullImage  = errors.New("the director names no single full image")
	ErrDeltaApplied = errors.New("the delta did not produce the signed image")
)

// Engine fetches what the director assigns to this device, verified
// against the image repository. It keeps TUF metadata and downloads under
// StateDir; one Engine must not Fetch twice at once.
type Engine struct {
	Server string // base URL, e.g. https://steward.example
	Org    string // organization slug of the image repository
	Device Device
	// Token returns the device token the director requires.
	Token func() string
	// DirectorRoot and ImageRoot are the 1.root.json files shipped with the
	// device; they are trusted only until a newer root is stored locally.
	DirectorRoot, ImageRoot []byte
	StateDir                string
	// CurrentImage is the device's running image; a delta is used only if
	// it hashes to the delta's precursor. Empty: always the full image.
	CurrentImage string
	Client       *http.Client // nil: http.DefaultClient
	Downloader   Downloader   // Client and Dir are filled in when empty
}

// Result is a fetched image, verified against the signed hashes.
type Result struct {
	// Path is the image file, named by its sha256, in the download dir;
	// the caller removes it once installed.
	Path  string
	Image Image // the full image's target, as both repositories agreed
	Delta bool  // the image was built from a delta
	// DeltaErr says why an offered delta was not used (the full image was
	// downloaded instead), for the logs.
	DeltaErr error
}

// Offer is what the director assigns, agreed by the image repository:
// one full image and the deltas that build it.
type Offer struct {
	Image  Image
	deltas []Image
}

// Version is the release version, from Steward's target naming
// <product>/<version>/<artifact>.
func (o Offer) Version() string { return path.Base(path.Dir(o.Image.Path)) }

// Fetch refreshes both repositories, checks that they agree on every
// target the director names, and downloads the assigned image, through a
// delta when the device runs its precursor.
func (e *Engine) Fetch(ctx context.Context) (Result, error) {
	o, err := e.Check(ctx)
	if err != nil {
		return Result{}, err
	}
	return e.Download(ctx, o)
}

// Check refreshes both repositories and checks that they agree on every
// target the director names. Nothing is downloaded but metadata.
func (e *Engine) Check(ctx context.Context) (Offer, error) {
	client := e.client()
	// A fresh updater per call: a go-tuf Updater refreshes only once.
	dir, err := e.updater(e.Server+"/device/v1/director", "director", e.DirectorRoot, BearerFetcher{Client: client, Token: e.Token})
	if err != nil {
		return Offer{}, fmt.Errorf("director: %w", err)
	}
	img, err := e.updater(e.Server+"/tuf/"+url.PathEscape(e.Org)+"/metadata", "image", e.ImageRoot, BearerFetcher{Client: client})
	if err != nil {
		return Offer{}, fmt.Errorf("image repository: %w", err)
	}
	targets := dir.GetTopLevelTargets()
	if len(targets) == 0 {
		return Offer{}, ErrNoUpdate
	}
	// Every target the director names must be agreed: a director that lies
	// about one target is not trusted for the others.
	paths := make([]string, 0, len(targets))
	for p := range targets {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var full []Image
	var deltas []Image
	for _, p := range paths {
		it, err := img.GetTargetInfo(p)
		if err != nil {
			// go-tuf has no error type for "not found"; anything else fails.
			if err.Error() != "target "+p+" not found" {
				return Offer{}, fmt.Errorf("image repository: %s: %w", p, err)
			}
			it = nil
		}
		im, err := Agree(e.Device, p, targets[p], it)
		if err != nil {
			return Offer{}, err
		}
		if im.PrecursorSHA256 == "" {
			full = append(full, im)
		} else {
			deltas = append(deltas, im)
		}
	}
	if len(full) != 1 {
		return Offer{}, fmt.Errorf("%w: it names %d", ErrNoFullImage, len(full))
	}
	return Offer{Image: full[0], deltas: deltas}, nil
}

func (e *Engine) client() *http.Client {
	if e.Client == nil {
		return http.DefaultClient
	}
	return e.Client
}

// DownloadDir is where Download keeps partial and verified images.
func (e *Engine) DownloadDir() string {
	if e.Downloader.Dir != "" {
		return e.Downloader.Dir
	}
	return filepath.Join(e.StateDir, "download")
}

// Download fetches the offered image, through a delta when the device
// runs its precursor, resuming what an earlier call left.
func (e *Engine) Download(ctx context.Context, o Offer) (Result, error) {
	want := o.Image
	dl := e.Downloader
	if dl.Client == nil {
		dl.Client = e.client()
	}
	dl.Dir = e.DownloadDir()
	tidy(dl.Dir, o)
	// Fetched in an earlier cycle that did not get to install it.
	final := filepath.Join(dl.Dir, hex.EncodeToString(want.Hashes["sha256"]))
	if verifyFile(final, want) == nil {
		return Result{Path: final, Image: want}, nil
	}
	var deltaErr error
	if d := e.pickDelta(want, o.deltas); d != nil {
		p, err := e.viaDelta(ctx, &dl, *d, want)
		if err == nil {
			return Result{Path: p, Image: want, Delta: true}, nil
		}
		if ctx.Err() != nil {
			return Result{}, ctx.Err()
		}
		deltaErr = err // the full image is verified just the same
	}
	p, err := dl.Download(ctx, e.targetURL(want.Path, want.Hashes["sha256"]), want)
	if err != nil {
		return Result{}, err
	}
	return Result{Path: p, Image: want, DeltaErr: deltaErr}, nil
}

// tidy removes from dir whatever the offer cannot use: images and patches
// of earlier offers, and temporary files a power cut left behind.
func tidy(dir string, o Offer) {
	keep := map[string]bool{}
	for _, im := range append([]Image{o.Image}, o.deltas...) {
		h := hex.EncodeToString(im.Hashes["sha256"])
		keep[h], keep[h+".part"], keep[h+".etag"] = true, true, true
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !keep[e.Name()] {
			_ = os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}

// updater refreshes one repository, trusting the newest root stored in
// StateDir/name, or the shipped one on first use.
func (e *Engine) updater(metaURL, name string, shipped []byte, f BearerFetcher) (*updater.Updater, error) {
	local := filepath.Join(e.StateDir, name)
	if err := os.MkdirAll(local, 0o700); err != nil {
		return nil, err
	}
	root, err := os.ReadFile(filepath.Join(local, "root.json"))
	if err != nil {
		root = shipped
	}
	cfg, err := config.New(metaURL, root)
	if err != nil {
		return nil, err
	}
	cfg.LocalMetadataDir = local
	// Never used: images come through the Downloader.
	cfg.LocalTargetsDir = filepath.Join(e.StateDir, name+"-targets")
	cfg.Fetcher = f
	up, err := updater.New(cfg)
	if err != nil {
		return nil, err
	}
	return up, up.Refresh()
}

// pickDelta returns the delta to want that applies to the current image.
func (e *Engine) pickDelta(want Image, deltas []Image) *Image {
	if e.CurrentImage == "" || len(deltas) == 0 {
		return nil
	}
	cur, err := fileSHA256(e.CurrentImage)
	if err != nil {
		return nil
	}
	for i, d := range deltas {
		// Same release directory (product/version) as the full image.
		if d.PrecursorSHA256 == cur && path.Dir(d.Path) == path.Dir(want.Path) && d.ReleaseID == want.ReleaseID {
			return &deltas[i]
		}
	}
	return nil
}

// viaDelta downloads d, applies it to the current image into a new file,
// and keeps the result only if it matches want's signed length and hashes.
func (e *Engine) viaDelta(ctx context.Context, dl *Downloader, d, want Image) (string, error) {
	patchPath, err := dl.Download(ctx, e.targetURL(d.Path, d.Hashes["sha256"]), d)
	if err != nil {
		return "", err
	}
	defer os.Remove(patchPath) // verified, but useless once applied
	old, err := os.Open(e.CurrentImage)
	if err != nil {
		return "", err
	}
	defer old.Close()
	st, err := old.Stat()
	if err != nil {
		return "", err
	}
	patch, err := os.Open(patchPath)
	if err != nil {
		return "", err
	}
	defer patch.Close()
	final := filepath.Join(dl.Dir, hex.EncodeToString(want.Hashes["sha256"]))
	out, err := os.CreateTemp(dl.Dir, "apply-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(out.Name()) // no-op after the rename
	defer out.Close()
	hs := newHashes(want)
	cw := &countWriter{w: io.MultiWriter(crashWriter{out, "delta/write"}, hs)}
	if err := delta.Apply(old, st.Size(), patch, cw, want.Length); err != nil {
		return "", fmt.Errorf("%w: %s: %v", ErrDeltaApplied, d.Path, err)
	}
	// Apply checks the patch header's hash; the signed target decides.
	if cw.n != want.Length {
		return "", fmt.Errorf("%w: %s gives %d bytes, signed %d", ErrDeltaApplied, d.Path, cw.n, want.Length)
	}
	if err := hs.verify(want.Path, want); err != nil {
		return "", fmt.Errorf("%w: %v", ErrDeltaApplied, err)
	}
	if err := out.Sync(); err != nil {
		return "", err
	}
	if err := out.Close(); err != nil {
		return "", err
	}
	crashpoint.Hit("delta/before-rename")
	return final, os.Rename(out.Name(), final)
}

// targetURL is a target's consistent-snapshot name in the image repository.
func (e *Engine) targetURL(p string, sha256sum []byte) string {
	d, base := path.Split(p)
	return e.Server + "/tuf/" + url.PathEscape(e.Org) + "/targets/" + d + hex.EncodeToString(sha256sum) + "." + base
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
