package server_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/release"
	"github.com/steward-iot/steward/internal/store/storetest"
)

func (l *live) upload(name string, content []byte) release.Artifact {
	l.t.Helper()
	req, _ := http.NewRequest("POST", l.url+"/api/v1/orgs/acme/artifacts?name="+name, bytes.NewReader(content))
	req.Header.Set("Authorization", "Bearer "+l.token)
	req.Header.Set("Content-Type", "application/octet-stream")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		l.t.Fatal(err)
	}
	defer res.Body.Close()
	var a release.Artifact
	if res.StatusCode != 201 || json.NewDecoder(res.Body).Decode(&a) != nil {
		l.t.Fatalf("upload %s: %d", name, res.StatusCode)
	}
	return a
}

func fetch(t *testing.T, url string) (int, []byte) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

// TestReleasesServedToGoTUF creates releases through the admin API and has
// the unmodified go-tuf v2 updater fetch and verify them from the live
// server's per-organization repository.
func TestReleasesServedToGoTUF(t *testing.T) {
	for _, d := range storetest.Dialects(t) {
		t.Run(string(d), func(t *testing.T) {
			l := start(t, d)
			l.admin("POST", "/api/v1/orgs/acme/products", inventory.CreateProductRequest{Slug: "gw", Name: "GW", HardwareID: "gw-hw",
				Capability: inventory.CapabilityAB, LinkClass: "wifi"}, nil)
			repo := l.url + "/tuf/acme"
			if code, _ := fetch(t, repo+"/metadata/1.root.json"); code != 404 {
				t.Fatalf("before any release: %d, want 404", code)
			}
			img1 := []byte(strings.Repeat("image one ", 1000))
			a1 := l.upload("fw.img", img1)
			var r1 release.Release
			l.admin("POST", "/api/v1/orgs/acme/releases", release.CreateReleaseRequest{Product: "gw", Version: "1.0.0",
				Artifacts: []release.ArtifactRef{{ID: a1.ID}}}, &r1)

			code, root := fetch(t, repo+"/metadata/1.root.json")
			if code != 200 {
				t.Fatalf("1.root.json: %d", code)
			}
			if code, _ := fetch(t, repo+"/metadata/2.root.json"); code != 404 {
				t.Fatalf("first missing root: %d, want 404", code)
			}
			if code, _ := fetch(t, l.url+"/tuf/nope/metadata/1.root.json"); code != 404 {
				t.Fatalf("unknown org: %d, want 404", code)
			}
			dir := t.TempDir()
			up := tufClient(t, repo, dir, root)
			if err := up.Refresh(); err != nil {
				t.Fatal(err)
			}
			info, err := up.GetTargetInfo("gw/1.0.0/fw.img")
			if err != nil {
				t.Fatal(err)
			}
			var custom struct {
				HardwareID     string `json:"hardware_id"`
				ReleaseCounter int64  `json:"release_counter"`
			}
			if info.Custom == nil || json.Unmarshal(*info.Custom, &custom) != nil || custom.HardwareID != "gw-hw" || custom.ReleaseCounter != 1 {
				t.Fatalf("custom fields: %v", info.Custom)
			}
			if _, data, err := up.DownloadTarget(info, "", ""); err != nil || !bytes.Equal(data, img1) {
				t.Fatalf("download: %v", err)
			}

			// A second release reaches a fresh updater on the same local state.
			img2 := []byte(strings.Repeat("image two ", 1000))
			a2 := l.upload("fw2.img", img2)
			l.admin("POST", "/api/v1/orgs/acme/releases", release.CreateReleaseRequest{Product: "gw", Version: "1.1.0",
				Artifacts: []release.ArtifactRef{{ID: a2.ID}}}, nil)
			up = tufClient(t, repo, dir, nil)
			if err := up.Refresh(); err != nil {
				t.Fatal(err)
			}
			info, err = up.GetTargetInfo("gw/1.1.0/fw2.img")
			if err != nil {
				t.Fatal(err)
			}
			if _, data, err := up.DownloadTarget(info, "", ""); err != nil || !bytes.Equal(data, img2) {
				t.Fatalf("download 1.1.0: %v", err)
			}
		})
	}
}

func tufClient(t *testing.T, repo, dir string, firstRoot []byte) *updater.Updater {
	t.Helper()
	root, err := os.ReadFile(filepath.Join(dir, "metadata", "root.json"))
	if err != nil {
		root = firstRoot
	}
	cfg, err := config.New(repo+"/metadata", root)
	if err != nil {
		t.Fatal(err)
	}
	cfg.LocalMetadataDir = filepath.Join(dir, "metadata")
	cfg.LocalTargetsDir = filepath.Join(dir, "targets")
	cfg.RemoteTargetsURL = repo + "/targets"
	up, err := updater.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return up
}
