package update

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

func target(length int64, sha byte, custom map[string]any) *metadata.TargetFiles {
	tf := metadata.TargetFile()
	tf.Length = length
	tf.Hashes = metadata.Hashes{"sha256": make([]byte, 32), "sha512": make([]byte, 64)}
	tf.Hashes["sha256"][0] = sha
	if custom != nil {
		b, _ := json.Marshal(custom)
		raw := json.RawMessage(b)
		tf.Custom = &raw
	}
	return tf
}

func fields(hw string, counter int64, dev string) map[string]any {
	m := map[string]any{"hardware_id": hw, "release_counter": counter, "release_id": "rel-1"}
	if dev != "" {
		m["device_id"] = dev
	}
	return m
}

func TestAgree(t *testing.T) {
	dev := Device{ID: "dev-1", HardwareID: "gw-hw", InstalledCounter: 3}
	good := func() (*metadata.TargetFiles, *metadata.TargetFiles) {
		return target(100, 1, fields("gw-hw", 4, "dev-1")), target(100, 1, fields("gw-hw", 4, ""))
	}
	d, i := good()
	im, err := Agree(dev, "gw/4/fw.img", d, i)
	if err != nil || im.ReleaseCounter != 4 || im.Length != 100 || im.DeviceID != "dev-1" || len(im.Hashes["sha512"]) != 64 {
		t.Fatalf("genuine target: %+v %v", im, err)
	}
	cases := []struct {
		name   string
		mutate func(d, i *metadata.TargetFiles) (*metadata.TargetFiles, *metadata.TargetFiles)
		dev    Device
		want   error
	}{
		{"image repo does not sign it", func(d, _ *metadata.TargetFiles) (*metadata.TargetFiles, *metadata.TargetFiles) { return d, nil }, dev, ErrNotInImageRepo},
		{"arbitrary software: hash differs", func(d, i *metadata.TargetFiles) (*metadata.TargetFiles, *metadata.TargetFiles) {
			d.Hashes["sha256"][1] = 9
			return d, i
		}, dev, ErrHashMismatch},
		{"endless data: director claims longer", func(d, i *metadata.TargetFiles) (*metadata.TargetFiles, *metadata.TargetFiles) {
			d.Length = 1 << 40
			return d, i
		}, dev, ErrLengthMismatch},
		{"director gives no hashes", func(d, i *metadata.TargetFiles) (*metadata.TargetFiles, *metadata.TargetFiles) {
			d.Hashes = metadata.Hashes{}
			return d, i
		}, dev, ErrHashMismatch},
		{"wrong hardware id in both", func(_, _ *metadata.TargetFiles) (*metadata.TargetFiles, *metadata.TargetFiles) {
			return target(100, 1, fields("other-hw", 4, "dev-1")), target(100, 1, fields("other-hw", 4, ""))
		}, dev, ErrHardwareID},
		{"director lies about hardware id", func(_, _ *metadata.TargetFiles) (*metadata.TargetFiles, *metadata.TargetFiles) {
			return target(100, 1, fields("gw-hw", 4, "dev-1")), target(100, 1, fields("other-hw", 4, ""))
		}, dev, ErrHardwareID},
		{"rollback below installed counter", func(_, _ *metadata.TargetFiles) (*metadata.TargetFiles, *metadata.TargetFiles) {
			return target(100, 1, fields("gw-hw", 2, "dev-1")), target(100, 1, fields("gw-hw", 2, ""))
		}, dev, ErrRollback},
		{"director raises the counter alone", func(_, _ *metadata.TargetFiles) (*metadata.TargetFiles, *metadata.TargetFiles) {
			return target(100, 1, fields("gw-hw", 9, "dev-1")), target(100, 1, fields("gw-hw", 4, ""))
		}, dev, ErrCustom},
		{"metadata for another device", func(_, i *metadata.TargetFiles) (*metadata.TargetFiles, *metadata.TargetFiles) {
			return target(100, 1, fields("gw-hw", 4, "dev-2")), i
		}, dev, ErrWrongDevice},
		{"no custom fields", func(_, i *metadata.TargetFiles) (*metadata.TargetFiles, *metadata.TargetFiles) {
			return target(100, 1, nil), i
		}, dev, ErrCustom},
		{"malformed custom fields", func(d, i *metadata.TargetFiles) (*metadata.TargetFiles, *metadata.TargetFiles) {
			raw := json.RawMessage(`{"hardware_id": 7}`)
			d.Custom = &raw
			return d, i
		}, dev, ErrCustom},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, i := good()
			d, i = tc.mutate(d, i)
			if _, err := Agree(tc.dev, "gw/4/fw.img", d, i); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// TestBearerFetcherTimesOut: a metadata server that never answers is given
// up after the fetcher's timeout instead of holding the agent.
func TestBearerFetcherTimesOut(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer srv.Close()
	defer close(release) // before Close, which waits for the handler
	f := BearerFetcher{Client: srv.Client(), Timeout: 100 * time.Millisecond}
	done := make(chan error, 1)
	go func() {
		_, err := f.DownloadFile(srv.URL+"/timestamp.json", 1<<10, 0)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want a deadline error", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a stalled metadata server held the fetcher")
	}
}
