package trust_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/steward-iot/steward/internal/problem"
	"github.com/steward-iot/steward/internal/trust"
)

// These tests run go-tuf v2's own, unmodified updater against Handler.

func TestGoTUFClient(t *testing.T) {
	f := newFixture(t, time.Now())
	image := bytes.Repeat([]byte("gateway firmware 1.2.0\n"), 1000)
	const custom = `{"hardware_id":"gw-1","release_counter":7,"precursor_sha256":"00ff"}`
	f.add("gateway/fw-1.2.0.bin", image, custom)

	dir := t.TempDir()
	up := f.client(dir)
	if err := up.Refresh(); err != nil {
		t.Fatalf("refresh: %v", err)
	}
	info, err := up.GetTargetInfo("gateway/fw-1.2.0.bin")
	if err != nil {
		t.Fatal(err)
	}
	if info.Custom == nil {
		t.Fatal("custom is missing")
	}
	var c struct {
		HardwareID     string `json:"hardware_id"`
		ReleaseCounter int    `json:"release_counter"`
		Precursor      string `json:"precursor_sha256"`
	}
	if err := json.Unmarshal(*info.Custom, &c); err != nil {
		t.Fatal(err)
	}
	if c.HardwareID != "gw-1" || c.ReleaseCounter != 7 || c.Precursor != "00ff" {
		t.Fatalf("custom = %+v", c)
	}
	if _, data, err := up.DownloadTarget(info, "", ""); err != nil || !bytes.Equal(data, image) {
		t.Fatalf("download: %v (content equal: %v)", err, bytes.Equal(data, image))
	}

	// Rotate root to three new keys, two of which must sign; one is ECDSA.
	newRoot := []*trust.Signer{newKey(t, trust.RoleRoot), newECDSAKey(t, trust.RoleRoot), newKey(t, trust.RoleRoot)}
	out, err := f.repo.RotateRoot(f.ctx, newRoot, 2)
	if err != nil {
		t.Fatal(err)
	}
	if out != (trust.Outcome{Role: trust.RoleRoot, Version: 2, Published: true}) {
		t.Fatalf("rotate: %+v", out)
	}
	image2 := []byte("gateway firmware 1.3.0")
	f.add("gateway/fw-1.3.0.bin", image2, `{"hardware_id":"gw-1","release_counter":8}`)

	// One Updater refreshes once: a new one on the same metadata directory.
	up = f.client(dir)
	if err := up.Refresh(); err != nil {
		t.Fatalf("refresh after rotation: %v", err)
	}
	trusted := up.GetTrustedMetadataSet()
	if v, th := trusted.Root.Signed.Version, trusted.Root.Signed.Roles["root"].Threshold; v != 2 || th != 2 {
		t.Fatalf("client trusts root version %d threshold %d, want 2 and 2", v, th)
	}
	for path, want := range map[string][]byte{"gateway/fw-1.3.0.bin": image2, "gateway/fw-1.2.0.bin": image} {
		info, err := up.GetTargetInfo(path)
		if err != nil {
			t.Fatal(err)
		}
		if _, data, err := up.DownloadTarget(info, "", ""); err != nil || !bytes.Equal(data, want) {
			t.Fatalf("download %s: %v", path, err)
		}
	}
}

func TestClientRejectsExpiredTimestamp(t *testing.T) {
	// Signed two days ago with a one-day timestamp.
	f := newFixture(t, time.Now().Add(-48*time.Hour))
	f.add("a.bin", []byte("a"), "")
	dir := t.TempDir()
	err := f.client(dir).Refresh()
	var expired *metadata.ErrExpiredMetadata
	if !errors.As(err, &expired) || !strings.Contains(err.Error(), "timestamp.json is expired") {
		t.Fatalf("refresh: %v, want an expired timestamp", err)
	}
	// What the server's periodic job does about it.
	if renewed, err := f.repo.RefreshTimestamp(f.ctx, time.Now()); err != nil || !renewed {
		t.Fatalf("RefreshTimestamp = %v, %v", renewed, err)
	}
	if err := f.client(dir).Refresh(); err != nil {
		t.Fatalf("refresh after renewal: %v", err)
	}
}

func TestClientRejectsRollback(t *testing.T) {
	f := newFixture(t, time.Now())
	f.add("a.bin", []byte("a"), "")
	old := f.get("timestamp.json")
	f.add("b.bin", []byte("b"), "")
	dir := t.TempDir()
	if err := f.client(dir).Refresh(); err != nil {
		t.Fatal(err)
	}
	f.put("timestamp.json", old) // a mirror replays an older, validly signed timestamp
	err := f.client(dir).Refresh()
	var bad *metadata.ErrBadVersionNumber
	if !errors.As(err, &bad) {
		t.Fatalf("refresh: %v, want a bad version number", err)
	}
}

func TestClientRejectsTamperedTarget(t *testing.T) {
	f := newFixture(t, time.Now())
	image := []byte("the real image")
	f.add("a.bin", image, "")
	f.blobs.put(sha256hex(image), []byte("a forged image")) // same length
	up := f.client(t.TempDir())
	info, err := up.GetTargetInfo("a.bin")
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = up.DownloadTarget(info, "", "")
	var mismatch *metadata.ErrLengthOrHashMismatch
	if !errors.As(err, &mismatch) {
		t.Fatalf("download: %v, want a hash mismatch", err)
	}

	// A mirror that sends more than was signed.
	f.blobs.put(sha256hex(image), image)
	h := trust.Handler(f.store, f.blobs)
	mirror := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		if strings.HasPrefix(r.URL.Path, "/targets/") {
			body = append(body, " and a payload"...)
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(body)
	}))
	defer mirror.Close()
	up = newClient(t, mirror.URL, t.TempDir(), func() []byte { return f.get("1.root.json") })
	if info, err = up.GetTargetInfo("a.bin"); err != nil {
		t.Fatal(err)
	}
	_, _, err = up.DownloadTarget(info, "", "")
	var tooLong *metadata.ErrDownloadLengthMismatch
	if !errors.As(err, &tooLong) {
		t.Fatalf("download from mirror: %v, want a length mismatch", err)
	}
}

func TestClientRejectsRootFromUnknownKeys(t *testing.T) {
	f := newFixture(t, time.Now())
	f.add("a.bin", []byte("a"), "")
	// Another repository's root 2, signed by keys this one never listed.
	other := newFixture(t, time.Now())
	if _, err := other.repo.RotateRoot(other.ctx, []*trust.Signer{newKey(t, trust.RoleRoot)}, 1); err != nil {
		t.Fatal(err)
	}
	f.put("2.root.json", other.get("2.root.json"))
	err := f.client(t.TempDir()).Refresh()
	var unsigned *metadata.ErrUnsignedMetadata
	if !errors.As(err, &unsigned) || !strings.Contains(err.Error(), "not enough signatures") {
		t.Fatalf("refresh: %v, want not enough signatures", err)
	}
}

// A root version must carry a threshold of the old root keys and of its own;
// the repository publishes it only then, and the client refuses it otherwise.
func TestClientRejectsUnderSignedRoot(t *testing.T) {
	f := newFixture(t, time.Now())
	f.add("a.bin", []byte("a"), "")
	dir := t.TempDir()
	refresh := func() error { return f.client(dir).Refresh() }
	wantUnsigned := func(err error) {
		t.Helper()
		var unsigned *metadata.ErrUnsignedMetadata
		if !errors.As(err, &unsigned) {
			t.Fatalf("refresh: %v, want not enough signatures", err)
		}
	}

	// Version 2: threshold 2 of n1 (here) and n2 (offline).
	n1 := newKey(t, trust.RoleRoot)
	n2, n2priv := ed25519Key(t, trust.RoleRoot)
	out, err := f.repo.RotateRoot(f.ctx, []*trust.Signer{n1, offline(t, trust.RoleRoot, n2priv)}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if out.Published || out.Version != 2 {
		t.Fatalf("rotate: %+v, want version 2 staged", out)
	}
	if res, err := http.Get(f.srv.URL + "/metadata/2.root.json"); err != nil || res.StatusCode != http.StatusNotFound {
		t.Fatalf("staged root served: %v %v", res.StatusCode, err)
	}
	if err := refresh(); err != nil {
		t.Fatal(err)
	}
	// Served anyway (a compromised server) with one of the two new signatures.
	f.put("2.root.json", f.get("staged.root.json"))
	wantUnsigned(refresh())

	v, payload, err := f.repo.UnsignedRoot()
	if err != nil || v != 2 {
		t.Fatalf("UnsignedRoot = %d, %v", v, err)
	}
	sig, err := n2.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	if out, err = f.repo.AddSignature(f.ctx, trust.RoleRoot, 2, sig); err != nil || !out.Published {
		t.Fatalf("AddSignature = %+v, %v", out, err)
	}
	if err := refresh(); err != nil {
		t.Fatalf("refresh with root 2: %v", err)
	}

	// Version 3 needs two of the version 2 keys; only n1 is here.
	if out, err = f.repo.RotateRoot(f.ctx, []*trust.Signer{newKey(t, trust.RoleRoot)}, 1); err != nil || out.Published {
		t.Fatalf("rotate to 3 = %+v, %v; want staged", out, err)
	}
	f.put("3.root.json", f.get("staged.root.json"))
	wantUnsigned(refresh())
	_, payload, err = f.repo.UnsignedRoot()
	if err != nil {
		t.Fatal(err)
	}
	if sig, err = n2.Sign(payload); err != nil {
		t.Fatal(err)
	}
	if out, err = f.repo.AddSignature(f.ctx, trust.RoleRoot, 3, sig); err != nil || !out.Published {
		t.Fatalf("AddSignature = %+v, %v", out, err)
	}
	up := f.client(dir)
	if err := up.Refresh(); err != nil {
		t.Fatalf("refresh with root 3: %v", err)
	}
	if v := up.GetTrustedMetadataSet().Root.Signed.Version; v != 3 {
		t.Fatalf("client trusts root %d, want 3", v)
	}
}

// Root and targets keys kept offline: nothing is served until they sign.
func TestOfflineSigning(t *testing.T) {
	f := &fixture{t: t, ctx: t.Context(), store: &trust.MemStore{}, blobs: &blobs{}}
	f.srv = httptest.NewServer(trust.Handler(f.store, f.blobs))
	defer f.srv.Close()
	rootKey, rootPriv := ed25519Key(t, trust.RoleRoot)
	targetsKey, targetsPriv := ed25519Key(t, trust.RoleTargets)
	online := []*trust.Signer{newKey(t, trust.RoleSnapshot), newKey(t, trust.RoleTimestamp)}
	repo, err := trust.Open(f.ctx, f.store, trust.Config{Signers: online})
	if err != nil {
		t.Fatal(err)
	}
	f.repo = repo
	keys := append([]*trust.Signer{offline(t, trust.RoleRoot, rootPriv), offline(t, trust.RoleTargets, targetsPriv)}, online...)
	if err := repo.Init(f.ctx, keys, nil); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"1.root.json", "1.targets.json", "timestamp.json"} {
		if _, err := f.store.Get(f.ctx, name); !errors.Is(err, trust.ErrNotFound) {
			t.Fatalf("%s before signing: %v", name, err)
		}
	}
	_, before, err := repo.UnsignedTargets()
	if err != nil {
		t.Fatal(err)
	}
	image := []byte("image")
	f.blobs.put(sha256hex(image), image)
	out, err := repo.AddTargets(f.ctx, []trust.Target{target("a.bin", image, "")})
	if err != nil || out != (trust.Outcome{Role: trust.RoleTargets, Version: 1}) {
		t.Fatalf("AddTargets = %+v, %v; want version 1 staged", out, err)
	}
	v, payload, err := repo.UnsignedTargets()
	if err != nil || v != 1 {
		t.Fatalf("UnsignedTargets = %d, %v", v, err)
	}
	sign := func(s *trust.Signer, payload []byte) metadata.Signature {
		t.Helper()
		sig, err := s.Sign(payload)
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}

	// Refused: a signature over the bytes before the target was added, the
	// root key signing targets, a version not staged, an online role.
	_, err = repo.AddSignature(f.ctx, trust.RoleTargets, 1, sign(targetsKey, before))
	wantKind(t, err, problem.KindInvalid)
	_, err = repo.AddSignature(f.ctx, trust.RoleTargets, 1, sign(rootKey, payload))
	wantKind(t, err, problem.KindInvalid)
	_, err = repo.AddSignature(f.ctx, trust.RoleTargets, 2, sign(targetsKey, payload))
	wantKind(t, err, problem.KindNotFound)
	_, err = repo.AddSignature(f.ctx, trust.RoleSnapshot, 1, sign(targetsKey, payload))
	wantKind(t, err, problem.KindInvalid)

	_, rootPayload, err := repo.UnsignedRoot()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := repo.AddSignature(f.ctx, trust.RoleRoot, 1, sign(rootKey, rootPayload)); err != nil || !out.Published {
		t.Fatalf("sign root: %+v, %v", out, err)
	}
	if out, err := repo.AddSignature(f.ctx, trust.RoleTargets, 1, sign(targetsKey, payload)); err != nil || !out.Published {
		t.Fatalf("sign targets: %+v, %v", out, err)
	}
	up := f.client(t.TempDir())
	info, err := up.GetTargetInfo("a.bin")
	if err != nil {
		t.Fatal(err)
	}
	if _, data, err := up.DownloadTarget(info, "", ""); err != nil || !bytes.Equal(data, image) {
		t.Fatalf("download: %v", err)
	}

	// The next release, signed the same way.
	image2 := []byte("image 2")
	f.blobs.put(sha256hex(image2), image2)
	if out, err = repo.AddTargets(f.ctx, []trust.Target{target("b.bin", image2, "")}); err != nil || out.Published || out.Version != 2 {
		t.Fatalf("AddTargets = %+v, %v; want version 2 staged", out, err)
	}
	_, payload, _ = repo.UnsignedTargets()
	if out, err = repo.AddSignature(f.ctx, trust.RoleTargets, 2, sign(targetsKey, payload)); err != nil || !out.Published {
		t.Fatalf("sign targets 2: %+v, %v", out, err)
	}
	if _, err := f.client(t.TempDir()).GetTargetInfo("b.bin"); err != nil {
		t.Fatal(err)
	}
}

// The periodic RefreshTimestamp keeps devices working for days without a
// release: every six hours a device refreshes with its clock at "now".
func TestRefreshTimestampKeepsClientsCurrent(t *testing.T) {
	f := newFixture(t, time.Now())
	f.add("a.bin", []byte("a"), "")
	dir := t.TempDir()
	for range 40 { // ten days: the snapshot must be renewed too
		f.clock.Advance(6 * time.Hour)
		if _, err := f.repo.RefreshTimestamp(f.ctx, f.clock.Now()); err != nil {
			t.Fatal(err)
		}
		up := f.client(dir)
		up.UnsafeSetRefTime(f.clock.Now())
		if err := up.Refresh(); err != nil {
			t.Fatalf("at %s: %v", f.clock.Now(), err)
		}
	}
	up := f.client(dir)
	if err := up.Refresh(); err != nil {
		t.Fatal(err)
	}
	if v := up.GetTrustedMetadataSet().Snapshot.Signed.Version; v < 3 {
		t.Fatalf("snapshot version %d after ten days: never renewed", v)
	}
	up = f.client(dir)
	up.UnsafeSetRefTime(f.clock.Now().Add(25 * time.Hour)) // a day without the job
	var expired *metadata.ErrExpiredMetadata
	if err := up.Refresh(); !errors.As(err, &expired) {
		t.Fatalf("refresh a day late: %v, want expired", err)
	}
}
