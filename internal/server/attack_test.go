package server_test

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/cjson"
	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"github.com/steward-iot/steward/agent/install"
	"github.com/steward-iot/steward/agent/update"
	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/release"
	"github.com/steward-iot/steward/internal/rollout"
	"github.com/steward-iot/steward/internal/server"
	"github.com/steward-iot/steward/internal/server/servertest"
	"github.com/steward-iot/steward/internal/store"
	"github.com/steward-iot/steward/internal/store/storetest"
	"github.com/steward-iot/steward/internal/trust"
)

// The attack matrix (issue #5). Each TestAttack… runs a live server, has a
// device enrolled and assigned a release through the real API, corrupts
// what the server serves the way an attacker would (its database, its blob
// folder, stolen online keys, or the network between server and device),
// and checks that the device's update is refused with a specific error and
// leaves nothing installed. This file holds the harness and the attacks on
// what the director names and on the image bytes; attack_tuf_test.go the
// attacks on TUF metadata.

// victim is a live server whose state a test corrupts through a database
// connection of its own and the server's blob folder.
type victim struct {
	url, token string
	data       string  // the server's data folder: blobs, SQLite file
	db         *sql.DB // the server's database, written behind its back
	orgID      string  // the "acme" organization
}

// startVictim runs a server on loopback until the test ends, with products
// gw (hardware gw-hw) and sensor (s-hw). clk nil is the real clock.
func startVictim(t *testing.T, d store.Dialect, clk clock.Clock) *victim {
	t.Helper()
	srv := servertest.StartWith(t, d, func(c *server.Config) { c.Clock = clk })
	cfg := srv.Config
	db, err := store.Open(context.Background(), cfg.DSN(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	pools := db.Pools()
	raw := pools["writer"] // SQLite: the read pool is query-only
	if raw == nil {
		raw = pools["main"]
	}
	v := &victim{url: srv.URL, token: srv.Token, data: cfg.Data, db: raw}
	if err := raw.QueryRow("SELECT id FROM orgs WHERE slug = 'acme'").Scan(&v.orgID); err != nil {
		t.Fatal(err)
	}
	l := v.at(t)
	l.admin("POST", "/api/v1/orgs/acme/products", inventory.CreateProductRequest{Slug: "gw", Name: "GW", HardwareID: "gw-hw",
		Capability: inventory.CapabilityAB, LinkClass: "wifi"}, nil)
	l.admin("POST", "/api/v1/orgs/acme/products", inventory.CreateProductRequest{Slug: "sensor", Name: "Sensor", HardwareID: "s-hw",
		Capability: inventory.CapabilityAB, LinkClass: "wifi"}, nil)
	return v
}

// at returns the admin API client bound to t, which its helpers fail.
func (v *victim) at(t *testing.T) *live { return &live{t: t, url: v.url, token: v.token} }

// call makes an admin API request and returns the status and body.
func (v *victim) call(t *testing.T, method, path string, body any) (int, []byte) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(method, v.url+path, strings.NewReader(string(b)))
	req.Header.Set("Authorization", "Bearer "+v.token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	return res.StatusCode, out
}

// release uploads img as fw.img and releases it as product/version.
func (v *victim) release(t *testing.T, product, version string, img []byte) (release.Release, release.Artifact) {
	t.Helper()
	l := v.at(t)
	a := l.upload("fw.img", img)
	var r release.Release
	l.admin("POST", "/api/v1/orgs/acme/releases", release.CreateReleaseRequest{Product: product, Version: version,
		Artifacts: []release.ArtifactRef{{ID: a.ID}}, NoDeltas: true}, &r)
	return r, a
}

// firmware is n reproducible pseudo-random bytes: an image.
func firmware(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// victimDevice is an enrolled device and its update engine.
type victimDevice struct {
	device
	engine  *update.Engine
	updater *update.Updater
	slots   *install.DirAB
	// installed is the counter the device committed; factory the sha256
	// of the image it runs.
	installed int64
	factory   string
}

// enroll enrolls and accepts a device of hardware hw that reports running
// version, whose release counter it has committed (0: none). It trusts
// the director root and the image repository's 1.root.json, as shipped,
// and runs the agent's whole update cycle (update.Updater) on ab-dir slots
// provisioned with a factory image of that version.
func (v *victim) enroll(t *testing.T, serial, hw, running string, installed int64) *victimDevice {
	t.Helper()
	dev := v.at(t).deviceOf(t, serial, hw)
	dev.checkin(t, running)
	code, dirRoot := fetchAuth(t, v.url+"/api/v1/orgs/acme/director/root", v.token)
	if code != 200 {
		t.Fatalf("director root: %d %s", code, dirRoot)
	}
	code, imgRoot := fetch(t, v.url+"/tuf/acme/metadata/1.root.json")
	if code != 200 {
		t.Fatalf("image repository 1.root.json: %d %s", code, imgRoot)
	}
	e := &update.Engine{Server: v.url, Org: "acme",
		Device: update.Device{ID: dev.id, HardwareID: hw, InstalledCounter: installed},
		Token: func() string {
			tok, err := dev.c.Token(context.Background())
			if err != nil {
				t.Error(err)
			}
			return tok
		},
		DirectorRoot: dirRoot, ImageRoot: imgRoot, StateDir: t.TempDir(),
		Downloader: update.Downloader{Attempts: 3, Backoff: time.Millisecond}}
	slots, err := install.NewDirAB(t.TempDir(), install.DirABOptions{})
	if err != nil {
		t.Fatal(err)
	}
	factory := filepath.Join(t.TempDir(), "factory.img")
	if err := os.WriteFile(factory, []byte("factory image of "+serial+" running "+running), 0o600); err != nil {
		t.Fatal(err)
	}
	img, err := install.FileImage(factory, "", running, installed)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := slots.Provision(ctx, img); err != nil {
		t.Fatal(err)
	}
	if err := slots.Boot(ctx); err != nil {
		t.Fatal(err)
	}
	q, err := update.OpenStatusQueue(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	u := &update.Updater{Engine: e, Installer: slots, Queue: q, Reporter: dev.c, StateDir: t.TempDir(), FactoryCounter: installed}
	return &victimDevice{device: dev, engine: e, updater: u, slots: slots, installed: installed, factory: img.SHA256}
}

// assign assigns a release to the device through the admin API.
func (v *victim) assign(t *testing.T, dv *victimDevice, releaseID string) {
	t.Helper()
	v.at(t).admin("PUT", "/api/v1/orgs/acme/devices/"+dv.id+"/assignment", rollout.AssignRequest{ReleaseID: releaseID}, nil)
}

// attemptUpdate runs the agent's whole update cycle (update.Updater:
// metadata, agreement, download, install, reboot, commit) against the
// server.
func attemptUpdate(t *testing.T, dv *victimDevice) (update.Outcome, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return dv.updater.Update(ctx)
}

// assertNothingInstalled checks that a refused update left nothing on the
// device: the factory image still runs from slot a, nothing is armed or on
// trial, the committed counter is as before, and the engine's folder holds
// only TUF metadata: no image, no byte of a partial download, no temporary
// or patch file. (An empty <sha256>.part is resume state the downloader
// keeps after a server error it retries, not content.)
func assertNothingInstalled(t *testing.T, dv *victimDevice) {
	t.Helper()
	st, err := dv.slots.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Booted.Name != "a" || st.Booted.SHA256 != dv.factory || st.Trial || st.Armed != nil {
		t.Errorf("after a refused update the device runs %+v (armed %+v), want its factory image in slot a", st.Booted, st.Armed)
	}
	if n, err := dv.updater.InstalledCounter(); err != nil || n != dv.installed {
		t.Errorf("committed counter %d (%v), want %d", n, err, dv.installed)
	}
	state := dv.engine.StateDir
	err = filepath.WalkDir(state, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(state, p)
		dir, name, _ := strings.Cut(filepath.ToSlash(rel), "/")
		switch {
		case (dir == "director" || dir == "image") && !strings.Contains(name, "/") && strings.HasSuffix(name, ".json"):
		case dir == "download" && strings.HasSuffix(name, ".part") && fileLen(t, p) == 0:
		default:
			t.Errorf("the refused update left %s (%d bytes) on the device", rel, fileLen(t, p))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func fileLen(t *testing.T, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// refused attempts an update that must fail with want (errors.Is: an
// agent/update sentinel or a go-tuf error type such as
// &metadata.ErrExpiredMetadata{}), refused by where ("director", "image
// repository", or "" for a disagreement between them or a download), and
// checks that nothing was installed. It returns the error for more checks.
func refused(t *testing.T, dv *victimDevice, want error, where string) error {
	t.Helper()
	return refusedIf(t, dv, where, fmt.Sprintf("%T %v", want, want), func(err error) bool { return errors.Is(err, want) })
}

// refusedIf is refused for an error that match recognizes.
func refusedIf(t *testing.T, dv *victimDevice, where, want string, match func(error) bool) error {
	t.Helper()
	out, err := attemptUpdate(t, dv)
	if err == nil {
		t.Fatalf("the device accepted the attack: update ended %s", out)
	}
	if !match(err) {
		t.Fatalf("refused with %v; want %s", err, want)
	}
	if where != "" && !strings.HasPrefix(err.Error(), where+": ") {
		t.Fatalf("refused with %v; want the %s to refuse", err, where)
	}
	assertNothingInstalled(t, dv)
	return err
}

// refresh refreshes one of the device's repositories ("director" or
// "image") in the engine's own metadata folder (StateDir/<repo>), as an
// update cycle that stopped right after refreshing would: from then on the
// device trusts those versions. It returns the timestamp version.
func (dv *victimDevice) refresh(t *testing.T, repo string) int64 {
	t.Helper()
	e := dv.engine
	local := filepath.Join(e.StateDir, repo)
	if err := os.MkdirAll(local, 0o700); err != nil {
		t.Fatal(err)
	}
	metaURL, root, f := e.Server+"/tuf/acme/metadata", e.ImageRoot, update.BearerFetcher{Client: http.DefaultClient}
	if repo == "director" {
		metaURL, root, f.Token = e.Server+"/device/v1/director", e.DirectorRoot, e.Token
	}
	if b, err := os.ReadFile(filepath.Join(local, "root.json")); err == nil {
		root = b
	}
	cfg, err := config.New(metaURL, root)
	if err != nil {
		t.Fatal(err)
	}
	cfg.LocalMetadataDir = local
	cfg.LocalTargetsDir = filepath.Join(e.StateDir, repo+"-targets")
	cfg.Fetcher = f
	up, err := updater.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := up.Refresh(); err != nil {
		t.Fatalf("%s refresh: %v", repo, err)
	}
	return up.GetTrustedMetadataSet().Timestamp.Signed.Version
}

// exec runs one statement against the server's database that must change
// exactly one row.
func (v *victim) exec(t *testing.T, query string, args ...any) {
	t.Helper()
	res, err := v.db.Exec(query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		t.Fatalf("%s changed %d rows (%v), want 1", query, n, err)
	}
}

// meta reads a stored image repository metadata file.
func (v *victim) meta(t *testing.T, name string) []byte {
	t.Helper()
	var s string
	if err := v.db.QueryRow("SELECT data FROM tuf_metadata WHERE org_id = $1 AND name = $2", v.orgID, name).Scan(&s); err != nil {
		t.Fatalf("stored %s: %v", name, err)
	}
	return []byte(s)
}

// putMeta writes an image repository metadata file, new or replacing one.
func (v *victim) putMeta(t *testing.T, name string, data []byte) {
	t.Helper()
	_, err := v.db.Exec(`INSERT INTO tuf_metadata (org_id, name, data, updated_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (org_id, name) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at`,
		v.orgID, name, string(data), time.Now().UnixMicro())
	if err != nil {
		t.Fatalf("write %s: %v", name, err)
	}
}

// published reads the stored timestamp and the snapshot and targets
// versions it leads to: what the image repository serves now.
func (v *victim) published(t *testing.T) (ts *metadata.Metadata[metadata.TimestampType], snapshot, targets int64) {
	t.Helper()
	ts, err := new(metadata.Metadata[metadata.TimestampType]).FromBytes(v.meta(t, "timestamp.json"))
	if err != nil {
		t.Fatal(err)
	}
	snapshot = ts.Signed.Meta["snapshot.json"].Version
	snap, err := new(metadata.Metadata[metadata.SnapshotType]).FromBytes(v.meta(t, versionedName(snapshot, "snapshot")))
	if err != nil {
		t.Fatal(err)
	}
	return ts, snapshot, snap.Signed.Meta["targets.json"].Version
}

// versionedName is a consistent-snapshot metadata name: "3.snapshot.json".
func versionedName(v int64, role string) string { return fmt.Sprintf("%d.%s.json", v, role) }

// onlineKey is the private key of an image repository role that the server
// keeps in its database (snapshot and timestamp always; every role in the
// embedded default): what an attacker who reads the database holds.
func (v *victim) onlineKey(t *testing.T, role trust.Role) *trust.Signer {
	t.Helper()
	var b64 string
	if err := v.db.QueryRow("SELECT private FROM tuf_keys WHERE org_id = $1 AND role = $2", v.orgID, string(role)).Scan(&b64); err != nil {
		t.Fatalf("online %s key: %v", role, err)
	}
	der, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		t.Fatal(err)
	}
	s, err := trust.NewSigner(role, priv.(crypto.Signer))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// signMeta signs md's canonical signed part with keys, as go-tuf verifies
// it, and encodes it.
func signMeta[T metadata.Roles](t *testing.T, md *metadata.Metadata[T], keys ...*trust.Signer) []byte {
	t.Helper()
	payload, err := cjson.EncodeCanonical(md.Signed)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		sig, err := k.Sign(payload)
		if err != nil {
			t.Fatal(err)
		}
		md.Signatures = append(md.Signatures, sig)
	}
	b, err := md.ToBytes(false)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// metaFileOf pins a metadata file by version, length and sha256, as the
// server's snapshot and timestamp do.
func metaFileOf(version int64, data []byte) *metadata.MetaFiles {
	sum := sha256.Sum256(data)
	m := metadata.MetaFile(version)
	m.Length = int64(len(data))
	m.Hashes = metadata.Hashes{"sha256": sum[:]}
	return m
}

// expiresIn is now+d as TUF writes expiry: UTC, whole seconds.
func expiresIn(d time.Duration) time.Time { return time.Now().Add(d).UTC().Truncate(time.Second) }

// blobPath is where the server keeps a blob's bytes.
func (v *victim) blobPath(sha256hex string) string {
	return filepath.Join(v.data, "blobs", "sha256", sha256hex[:2], sha256hex)
}

// replaceFile swaps a file's content as one rename, so the server never
// serves a half-written file.
func replaceFile(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".attack"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// imageSize keeps images small: the attacks are about bytes, not volume.
const imageSize = 64 << 10

// TestAttackArbitrarySoftware replaces the stored bytes of a signed image
// in the server's blob folder with other bytes of the same length (so the
// server still serves them): the device hashes what it downloads, refuses
// it, and keeps none of it.
func TestAttackArbitrarySoftware(t *testing.T) {
	for _, d := range storetest.Dialects(t) {
		t.Run(string(d), func(t *testing.T) {
			v := startVictim(t, d, nil)
			r1, a1 := v.release(t, "gw", "1.0.0", firmware(1, imageSize))
			dv := v.enroll(t, "ARBITRARY-1", "gw-hw", "0.9.0", 0)
			v.assign(t, dv, r1.ID)

			replaceFile(t, v.blobPath(a1.SHA256), firmware(666, imageSize))
			err := refused(t, dv, update.ErrDownloadHash, "")
			if !strings.Contains(err.Error(), "sha256") {
				t.Fatalf("refusal does not say which hash failed: %v", err)
			}
		})
	}
}

// TestAttackEndlessData sends the device more bytes than it may take: a
// stored image longer than signed (the server refuses to serve it), and an
// attacker on the network who appends bytes to the image, announcing the
// longer length or streaming without Content-Length and without end, or
// sends a timestamp.json without end. The device stops at the signed (or,
// for metadata, the configured) length and keeps nothing.
func TestAttackEndlessData(t *testing.T) {
	for _, d := range storetest.Dialects(t) {
		t.Run(string(d), func(t *testing.T) {
			v := startVictim(t, d, nil)
			img := firmware(1, imageSize)
			r1, a1 := v.release(t, "gw", "1.0.0", img)

			t.Run("stored image longer than signed", func(t *testing.T) {
				dv := v.enroll(t, "ENDLESS-STORED", "gw-hw", "0.9.0", 0)
				v.assign(t, dv, r1.ID)
				replaceFile(t, v.blobPath(a1.SHA256), append(append([]byte{}, img...), firmware(666, imageSize)...))
				defer replaceFile(t, v.blobPath(a1.SHA256), img)
				refusedIf(t, dv, "", "the server's 500 for a stored image that does not match its signed length", func(err error) bool {
					var se *update.StatusError
					return errors.As(err, &se) && se.StatusCode == http.StatusInternalServerError
				})
			})
			for _, c := range []struct {
				name, serial string
				path         string // what the attacker lengthens
				announce     bool
				want         error
				where        string
			}{
				{"image with a longer Content-Length", "ENDLESS-ANNOUNCED", "/tuf/acme/targets/", true, update.ErrEndlessData, ""},
				{"image without Content-Length and without end", "ENDLESS-STREAM", "/tuf/acme/targets/", false, update.ErrEndlessData, ""},
				{"timestamp.json without end", "ENDLESS-META", "/tuf/acme/metadata/timestamp.json", false,
					&metadata.ErrDownloadLengthMismatch{}, "image repository"},
			} {
				t.Run(c.name, func(t *testing.T) {
					dv := v.enroll(t, c.serial, "gw-hw", "0.9.0", 0)
					v.assign(t, dv, r1.ID)
					mitm := &lengthener{upstream: v.url, proxy: reverseProxy(t, v.url), path: c.path, announce: c.announce}
					proxy := httptest.NewServer(mitm)
					dv.engine.Server = proxy.URL
					refused(t, dv, c.want, c.where)
					proxy.Close() // waits for the handler: the device hung up
					mitm.mu.Lock()
					defer mitm.mu.Unlock()
					if mitm.served == 0 || mitm.exhausted {
						t.Fatalf("the attacker lengthened %d files and ran out of data: %v; the device should have hung up", mitm.served, mitm.exhausted)
					}
				})
			}
		})
	}
}

// lengthener is an attacker on the network: it passes every request to the
// server but sends the files under path with more bytes than the server has.
type lengthener struct {
	upstream string
	proxy    http.Handler
	path     string // prefix of the URL paths to lengthen
	announce bool   // send the longer Content-Length; else stream, unannounced, without end

	mu        sync.Mutex
	served    int
	exhausted bool // the device read all the attacker had
}

// endlessCap bounds the endless stream, so a device that never hangs up
// fails the test instead of hanging it.
const endlessCap = 256 << 20

func (m *lengthener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, m.path) {
		m.proxy.ServeHTTP(w, r)
		return
	}
	res, err := http.Get(m.upstream + r.URL.Path)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || res.StatusCode != http.StatusOK {
		http.Error(w, "upstream failed", http.StatusBadGateway)
		return
	}
	m.mu.Lock()
	m.served++
	m.mu.Unlock()
	more := firmware(7, 64<<10)
	if m.announce {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)+len(more)))
		_, _ = w.Write(body)
		_, _ = w.Write(more)
		return
	}
	// Flushing makes the response chunked: no length is ever announced.
	f := w.(http.Flusher)
	if _, err := w.Write(body); err != nil {
		return
	}
	f.Flush()
	for sent := 0; sent < endlessCap; sent += len(more) {
		if _, err := w.Write(more); err != nil {
			return // the device hung up
		}
		f.Flush()
	}
	m.mu.Lock()
	m.exhausted = true
	m.mu.Unlock()
}

func reverseProxy(t *testing.T, upstream string) http.Handler {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	return httputil.NewSingleHostReverseProxy(u)
}

// TestAttackDirectorNamesUnsignedImage corrupts the server's release
// records so that the director, which signs with online keys whatever the
// database says a device should install, names an image the image
// repository does not sign: another file under a new path, or other bytes
// under a path the image repository signs. The device installs only what
// both repositories agree on.
func TestAttackDirectorNamesUnsignedImage(t *testing.T) {
	for _, d := range storetest.Dialects(t) {
		t.Run(string(d), func(t *testing.T) {
			v := startVictim(t, d, nil)
			img := firmware(1, imageSize)
			r1, a1 := v.release(t, "gw", "1.0.0", img)
			cases := []struct {
				name   string
				file   string
				evil   []byte
				want   error
				serial string
			}{
				{"a path the image repository never signed", "evil.img", firmware(666, imageSize), update.ErrNotInImageRepo, "UNSIGNED-PATH"},
				{"a signed path with other bytes", "fw.img", firmware(667, imageSize), update.ErrHashMismatch, "UNSIGNED-BYTES"},
				{"a signed path with another length", "fw.img", firmware(668, 2*imageSize), update.ErrLengthMismatch, "UNSIGNED-LENGTH"},
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					dv := v.enroll(t, c.serial, "gw-hw", "0.9.0", 0)
					v.assign(t, dv, r1.ID)
					evil := v.at(t).upload(c.file, c.evil)
					// The release now lists the attacker's artifact instead of its image.
					v.exec(t, "UPDATE release_artifacts SET artifact_id = $1 WHERE release_id = $2 AND artifact_id = $3", evil.ID, r1.ID, a1.ID)
					defer v.exec(t, "UPDATE release_artifacts SET artifact_id = $1 WHERE release_id = $2 AND artifact_id = $3", a1.ID, r1.ID, evil.ID)
					err := refused(t, dv, c.want, "")
					if !strings.Contains(err.Error(), "gw/1.0.0/"+c.file) {
						t.Fatalf("refusal does not name the director's target: %v", err)
					}
				})
			}
		})
	}
}

// TestAttackReleaseCounterBelowInstalled assigns a device running release
// 1.1.0 the older, genuinely signed 1.0.0 (a downgrade to a vulnerable
// release, which the server allows an operator): the device refuses any
// release counter below the one it committed.
func TestAttackReleaseCounterBelowInstalled(t *testing.T) {
	for _, d := range storetest.Dialects(t) {
		t.Run(string(d), func(t *testing.T) {
			v := startVictim(t, d, nil)
			r1, _ := v.release(t, "gw", "1.0.0", firmware(1, imageSize))
			r2, _ := v.release(t, "gw", "1.1.0", firmware(2, imageSize))
			if r1.Counter >= r2.Counter {
				t.Fatalf("release counters %d, %d do not increase", r1.Counter, r2.Counter)
			}
			dv := v.enroll(t, "DOWNGRADE-1", "gw-hw", "1.1.0", r2.Counter)
			v.assign(t, dv, r1.ID)
			refused(t, dv, update.ErrRollback, "")
		})
	}
}

// TestAttackWrongHardwareID makes the server assign a gateway image to a
// sensor. The API refuses that assignment, so the attacker writes it into
// the database; the director then names the gateway image, which both
// repositories sign for gw-hw, and the sensor refuses it.
func TestAttackWrongHardwareID(t *testing.T) {
	for _, d := range storetest.Dialects(t) {
		t.Run(string(d), func(t *testing.T) {
			v := startVictim(t, d, nil)
			r1, _ := v.release(t, "gw", "1.0.0", firmware(1, imageSize))
			dv := v.enroll(t, "SENSOR-1", "s-hw", "0.9.0", 0)
			code, body := v.call(t, "PUT", "/api/v1/orgs/acme/devices/"+dv.id+"/assignment", rollout.AssignRequest{ReleaseID: r1.ID})
			if code/100 != 4 {
				t.Fatalf("assigning a gateway release to a sensor: %d %s, want a 4xx refusal", code, body)
			}
			v.exec(t, "INSERT INTO device_assignments (device_id, org_id, release_id, assigned_by, assigned_at) VALUES ($1, $2, $3, 'attacker', $4)",
				dv.id, v.orgID, r1.ID, time.Now().UnixMicro())
			err := refused(t, dv, update.ErrHardwareID, "")
			if !strings.Contains(err.Error(), `"gw-hw"`) || !strings.Contains(err.Error(), `"s-hw"`) {
				t.Fatalf("refusal does not name both hardware ids: %v", err)
			}
		})
	}
}

// TestAttackDirectorTargetForAnotherDevice relays a device's director
// requests with another device's token, as an attacker replaying another
// device's director repository would: every file is genuinely signed by
// the director, but for the other device, and the device refuses it.
func TestAttackDirectorTargetForAnotherDevice(t *testing.T) {
	for _, d := range storetest.Dialects(t) {
		t.Run(string(d), func(t *testing.T) {
			v := startVictim(t, d, nil)
			r1, _ := v.release(t, "gw", "1.0.0", firmware(1, imageSize))
			victimDev := v.enroll(t, "VICTIM-1", "gw-hw", "0.9.0", 0)
			other := v.enroll(t, "OTHER-1", "gw-hw", "0.9.0", 0)
			v.assign(t, other, r1.ID)
			proxy := httptest.NewServer(&tokenSwap{proxy: reverseProxy(t, v.url), token: other.engine.Token})
			defer proxy.Close()
			victimDev.engine.Server = proxy.URL
			err := refused(t, victimDev, update.ErrWrongDevice, "")
			if !strings.Contains(err.Error(), other.id) || !strings.Contains(err.Error(), victimDev.id) {
				t.Fatalf("refusal does not name both devices: %v", err)
			}
		})
	}
}

// tokenSwap relays requests, sending director requests with another token.
type tokenSwap struct {
	proxy http.Handler
	token func() string
}

func (s *tokenSwap) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/device/v1/director/") {
		r.Header.Set("Authorization", "Bearer "+s.token())
	}
	s.proxy.ServeHTTP(w, r)
}
