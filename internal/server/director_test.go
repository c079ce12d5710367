package server_test

import (
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"github.com/steward-iot/steward/agent/client"
	agentid "github.com/steward-iot/steward/agent/identity"
	"github.com/steward-iot/steward/agent/proto"
	"github.com/steward-iot/steward/agent/update"
	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/release"
	"github.com/steward-iot/steward/internal/rollout"
	"github.com/steward-iot/steward/internal/store/storetest"
)

// device is an enrolled, accepted device talking to a live server.
type device struct {
	id  string
	c   *client.Client
	dir string // local TUF metadata of both repositories
}

func (l *live) device(t *testing.T, serial string) device {
	t.Helper()
	return l.deviceOf(t, serial, "gw-hw")
}

func (l *live) deviceOf(t *testing.T, serial, hardwareID string) device {
	t.Helper()
	key, _, err := agentid.LoadOrCreate(t.TempDir(), agentid.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	c := client.New(l.url, key, client.Options{})
	resp, err := c.Enroll(context.Background(), client.EnrollParams{Org: "acme", HardwareID: hardwareID, Serial: serial})
	if err != nil {
		t.Fatal(err)
	}
	l.admin("POST", "/api/v1/orgs/acme/devices/accept", map[string]any{"device_ids": []string{resp.DeviceID}}, nil)
	return device{id: resp.DeviceID, c: c, dir: t.TempDir()}
}

func (d device) checkin(t *testing.T, version string) string {
	t.Helper()
	resp, err := d.c.Checkin(context.Background(), proto.CheckinRequest{Installed: proto.Installed{Version: version}})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Action
}

// director refreshes the device's director repository with the unmodified
// go-tuf updater, starting from the director root it was provisioned with.
func (d device) director(t *testing.T, url string, root []byte) (*updater.Updater, error) {
	t.Helper()
	cfg, err := config.New(url+"/device/v1/director", root)
	if err != nil {
		t.Fatal(err)
	}
	cfg.LocalMetadataDir = filepath.Join(d.dir, "director")
	cfg.LocalTargetsDir = filepath.Join(d.dir, "director-targets") // never used: images come from the image repository
	cfg.Fetcher = update.BearerFetcher{Client: http.DefaultClient, Token: func() string {
		tok, err := d.c.Token(context.Background())
		if err != nil {
			t.Error(err)
		}
		return tok
	}}
	up, err := updater.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return up, up.Refresh()
}

// TestDirectorAgreesWithImageRepository assigns releases to devices and has
// each device refresh its own director repository and the image repository
// with the unmodified go-tuf updater, then accept only what both agree on.
func TestDirectorAgreesWithImageRepository(t *testing.T) {
	for _, d := range storetest.Dialects(t) {
		t.Run(string(d), func(t *testing.T) {
			l := start(t, d)
			l.admin("POST", "/api/v1/orgs/acme/products", inventory.CreateProductRequest{Slug: "gw", Name: "GW", HardwareID: "gw-hw",
				Capability: inventory.CapabilityAB, LinkClass: "wifi"}, nil)
			a1 := l.upload("fw.img", []byte(strings.Repeat("image one ", 1000)))
			var r1, r2 release.Release
			l.admin("POST", "/api/v1/orgs/acme/releases", release.CreateReleaseRequest{Product: "gw", Version: "1.0.0",
				Artifacts: []release.ArtifactRef{{ID: a1.ID}}}, &r1)
			a2 := l.upload("fw.img", []byte(strings.Repeat("image two ", 1000)))
			l.admin("POST", "/api/v1/orgs/acme/releases", release.CreateReleaseRequest{Product: "gw", Version: "1.1.0",
				Artifacts: []release.ArtifactRef{{ID: a2.ID}}}, &r2)

			code, dirRoot := fetchAuth(t, l.url+"/api/v1/orgs/acme/director/root", l.token)
			if code != 200 {
				t.Fatalf("director root: %d %s", code, dirRoot)
			}
			_, imgRoot := fetch(t, l.url+"/tuf/acme/metadata/1.root.json")

			dev, other := l.device(t, "DIR-1"), l.device(t, "DIR-2")
			if got := dev.checkin(t, "0.9.0"); got != proto.ActionNone {
				t.Fatalf("unassigned device told %q", got)
			}
			// Unassigned: a valid, empty director repository.
			up, err := dev.director(t, l.url, dirRoot)
			if err != nil {
				t.Fatal(err)
			}
			if n := len(up.GetTopLevelTargets()); n != 0 {
				t.Fatalf("unassigned device's director lists %d targets", n)
			}

			l.admin("PUT", "/api/v1/orgs/acme/devices/"+dev.id+"/assignment", rollout.AssignRequest{ReleaseID: r1.ID}, nil)
			l.admin("PUT", "/api/v1/orgs/acme/devices/"+other.id+"/assignment", rollout.AssignRequest{ReleaseID: r2.ID}, nil)
			if got := dev.checkin(t, "0.9.0"); got != proto.ActionUpdate {
				t.Fatalf("assigned device told %q, want update", got)
			}
			img := imageUpdater(t, l.url, filepath.Join(dev.dir, "image"), imgRoot)
			agreed := func(dev device) update.Image {
				t.Helper()
				up, err := dev.director(t, l.url, dirRoot)
				if err != nil {
					t.Fatal(err)
				}
				targets := up.GetTopLevelTargets()
				if len(targets) != 1 {
					t.Fatalf("director lists %d targets, want exactly 1", len(targets))
				}
				for path, dt := range targets {
					it, err := img.GetTargetInfo(path)
					if err != nil {
						t.Fatal(err)
					}
					im, err := update.Agree(update.Device{ID: dev.id, HardwareID: "gw-hw"}, path, dt, it)
					if err != nil {
						t.Fatal(err)
					}
					return im
				}
				panic("unreachable")
			}
			if err := img.Refresh(); err != nil {
				t.Fatal(err)
			}
			im := agreed(dev)
			if im.Path != "gw/1.0.0/fw.img" || hex.EncodeToString(im.Hashes["sha256"]) != a1.SHA256 || im.ReleaseCounter != r1.Counter || im.DeviceID != dev.id {
				t.Fatalf("agreed on %+v", im)
			}
			if im := agreed(other); im.Path != "gw/1.1.0/fw.img" || im.DeviceID != other.id {
				t.Fatalf("other device agreed on %+v", im)
			}
			// Asking again signs nothing new: the same timestamp version.
			ts1 := timestampVersion(t, dev, l, dirRoot)
			if ts2 := timestampVersion(t, dev, l, dirRoot); ts2 != ts1 {
				t.Fatalf("unchanged assignment re-signed: timestamp %d → %d", ts1, ts2)
			}
			// A new assignment reaches the device as a newer version.
			l.admin("PUT", "/api/v1/orgs/acme/devices/"+dev.id+"/assignment", rollout.AssignRequest{ReleaseID: r2.ID}, nil)
			if im := agreed(dev); im.Path != "gw/1.1.0/fw.img" || im.ReleaseCounter != r2.Counter {
				t.Fatalf("after reassignment: %+v", im)
			}
			if ts3 := timestampVersion(t, dev, l, dirRoot); ts3 <= ts1 {
				t.Fatalf("reassignment did not raise the timestamp version: %d → %d", ts1, ts3)
			}
			// Installed: the device is told nothing more.
			if got := dev.checkin(t, "1.1.0"); got != proto.ActionNone {
				t.Fatalf("device on the assigned version told %q", got)
			}
			// A device running 1.0.0 is also offered the delta from its image.
			third := l.device(t, "DIR-3")
			third.checkin(t, "1.0.0")
			l.admin("PUT", "/api/v1/orgs/acme/devices/"+third.id+"/assignment", rollout.AssignRequest{ReleaseID: r2.ID}, nil)
			up3, err := third.director(t, l.url, dirRoot)
			if err != nil {
				t.Fatal(err)
			}
			img = imageUpdater(t, l.url, filepath.Join(third.dir, "image"), imgRoot) // one refresh per updater
			if err := img.Refresh(); err != nil {
				t.Fatal(err)
			}
			var deltas int
			for path, dt := range up3.GetTopLevelTargets() {
				it, err := img.GetTargetInfo(path)
				if err != nil {
					t.Fatal(err)
				}
				im, err := update.Agree(update.Device{ID: third.id, HardwareID: "gw-hw", InstalledCounter: r1.Counter}, path, dt, it)
				if err != nil {
					t.Fatal(err)
				}
				if im.PrecursorSHA256 != "" {
					deltas++
					if im.PrecursorSHA256 != a1.SHA256 {
						t.Fatalf("delta %s names precursor %s, the device runs %s", path, im.PrecursorSHA256, a1.SHA256)
					}
				}
			}
			if n := len(up3.GetTopLevelTargets()); n != 2 || deltas != 1 {
				t.Fatalf("device on 1.0.0 is offered %d targets (%d deltas), want the full image and the delta", n, deltas)
			}

			// No device token, no director.
			if code, _ := fetch(t, l.url+"/device/v1/director/timestamp.json"); code != 401 {
				t.Fatalf("director without a device token: %d, want 401", code)
			}
			// The first missing root is a 404 (the client walks N.root.json).
			tok, _ := dev.c.Token(context.Background())
			if code, _ := fetchAuth(t, l.url+"/device/v1/director/2.root.json", tok); code != 404 {
				t.Fatalf("2.root.json: %d, want 404", code)
			}
		})
	}
}

func timestampVersion(t *testing.T, dev device, l *live, root []byte) int64 {
	t.Helper()
	up, err := dev.director(t, l.url, root)
	if err != nil {
		t.Fatal(err)
	}
	return up.GetTrustedMetadataSet().Timestamp.Signed.Version
}

func imageUpdater(t *testing.T, url, dir string, root []byte) *updater.Updater {
	t.Helper()
	return tufClient(t, url+"/tuf/acme", dir, root)
}

func fetchAuth(t *testing.T, url, token string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}
