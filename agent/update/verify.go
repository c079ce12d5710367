// Package update is the device side of an update: it checks what the
// director tells this device to install against what the image repository
// signed, before a byte of the image is downloaded.
//
// Both repositories are refreshed with go-tuf's updater (rollback, freeze
// and mix-and-match protection come from TUF); Agree then applies the
// Uptane rule that the two must agree on every detail, so neither the
// online director key alone nor the image repository alone can make a
// device install something.
package update

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Errors Agree returns, wrapped with details. Each names an attack or a
// mistake the device refuses.
var (
	ErrWrongDevice    = errors.New("director metadata names another device")
	ErrNotInImageRepo = errors.New("the image repository does not sign this target")
	ErrLengthMismatch = errors.New("director and image repository disagree on the length")
	ErrHashMismatch   = errors.New("director and image repository disagree on a hash")
	ErrHardwareID     = errors.New("target is for other hardware")
	ErrRollback       = errors.New("release counter is below the installed one")
	ErrCustom         = errors.New("target custom fields are missing or malformed")
)

// Custom is what Steward signs in a target's custom field.
type Custom struct {
	HardwareID      string `json:"hardware_id"`
	ReleaseCounter  int64  `json:"release_counter"`
	ReleaseID       string `json:"release_id"`
	PrecursorSHA256 string `json:"precursor_sha256,omitempty"`
	DeviceID        string `json:"device_id,omitempty"` // director only
}

// Image is a target both repositories agree this device should install.
type Image struct {
	Path   string
	Length int64
	// Hashes by algorithm, as the image repository signed them.
	Hashes map[string][]byte
	Custom
}

// Device is what the device knows about itself.
type Device struct {
	ID         string
	HardwareID string
	// InstalledCounter is the release counter of the last committed
	// release; it only rises (anti-rollback).
	InstalledCounter int64
}

// Agree checks a director target (path and file) against the image
// repository's target of the same path. image is nil when the image
// repository has no such target.
func Agree(dev Device, path string, director, image *metadata.TargetFiles) (Image, error) {
	if image == nil {
		return Image{}, fmt.Errorf("%w: %s", ErrNotInImageRepo, path)
	}
	dc, err := custom(director)
	if err != nil {
		return Image{}, fmt.Errorf("director target %s: %w", path, err)
	}
	ic, err := custom(image)
	if err != nil {
		return Image{}, fmt.Errorf("image target %s: %w", path, err)
	}
	if dc.DeviceID != dev.ID {
		return Image{}, fmt.Errorf("%w: %s names device %q, this is %q", ErrWrongDevice, path, dc.DeviceID, dev.ID)
	}
	if director.Length != image.Length {
		return Image{}, fmt.Errorf("%w: %s: director %d bytes, image repository %d", ErrLengthMismatch, path, director.Length, image.Length)
	}
	// Every hash the director gives must match; the image repository must
	// give SHA-256 at least, which the downloader verifies.
	if len(image.Hashes["sha256"]) == 0 {
		return Image{}, fmt.Errorf("%w: %s has no sha256 in the image repository", ErrHashMismatch, path)
	}
	if len(director.Hashes) == 0 {
		return Image{}, fmt.Errorf("%w: %s has no hashes in the director", ErrHashMismatch, path)
	}
	for alg, h := range director.Hashes {
		if !bytes.Equal(h, image.Hashes[alg]) {
			return Image{}, fmt.Errorf("%w: %s %s", ErrHashMismatch, path, alg)
		}
	}
	if dc.HardwareID != ic.HardwareID || ic.HardwareID != dev.HardwareID {
		return Image{}, fmt.Errorf("%w: %s: image repository says %q, director %q, this device is %q",
			ErrHardwareID, path, ic.HardwareID, dc.HardwareID, dev.HardwareID)
	}
	if dc.ReleaseCounter != ic.ReleaseCounter || dc.ReleaseID != ic.ReleaseID || dc.PrecursorSHA256 != ic.PrecursorSHA256 {
		return Image{}, fmt.Errorf("%w: %s: director and image repository name different releases", ErrCustom, path)
	}
	if ic.ReleaseCounter < dev.InstalledCounter {
		return Image{}, fmt.Errorf("%w: %s has counter %d, installed is %d", ErrRollback, path, ic.ReleaseCounter, dev.InstalledCounter)
	}
	hashes := map[string][]byte{}
	for alg, h := range image.Hashes {
		hashes[alg] = bytes.Clone(h)
	}
	ic.DeviceID = dc.DeviceID
	return Image{Path: path, Length: image.Length, Hashes: hashes, Custom: ic}, nil
}

func custom(t *metadata.TargetFiles) (Custom, error) {
	var c Custom
	if t.Custom == nil {
		return c, ErrCustom
	}
	dec := json.NewDecoder(bytes.NewReader(*t.Custom))
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("%w: %v", ErrCustom, err)
	}
	if c.HardwareID == "" || c.ReleaseCounter < 1 {
		return c, fmt.Errorf("%w: hardware_id and a positive release_counter are required", ErrCustom)
	}
	return c, nil
}

// BearerFetcher is a go-tuf fetcher that sends the device token, for the
// director, which serves each device only its own metadata. (go-tuf's own
// NewFetcherWithRoundTripper changes Go's default HTTP client for the
// whole process.) A nil Token sends no Authorization, for the public
// image repository.
type BearerFetcher struct {
	Client *http.Client
	Token  func() string
	// Timeout bounds one metadata request (default 1 minute): metadata
	// files are small, and a stalled server must not hold the agent.
	Timeout time.Duration
}

// DownloadFile implements fetcher.Fetcher.
func (f BearerFetcher) DownloadFile(url string, maxLength int64, _ time.Duration) ([]byte, error) {
	timeout := f.Timeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if f.Token != nil {
		req.Header.Set("Authorization", "Bearer "+f.Token())
	}
	res, err := f.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		// go-tuf walks N.root.json until a 404: it must see this type.
		return nil, &metadata.ErrDownloadHTTP{StatusCode: res.StatusCode, URL: url}
	}
	b, err := io.ReadAll(io.LimitReader(res.Body, maxLength+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > maxLength {
		return nil, &metadata.ErrDownloadLengthMismatch{Msg: fmt.Sprintf("%s: more than the %d bytes allowed", url, maxLength)}
	}
	return b, nil
}
