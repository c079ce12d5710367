package trust_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/problem"
	"github.com/steward-iot/steward/internal/trust"
)

// ed25519Key returns a new Ed25519 signer for role and its private key.
func ed25519Key(t *testing.T, role trust.Role) (*trust.Signer, ed25519.PrivateKey) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := trust.NewSigner(role, priv)
	if err != nil {
		t.Fatal(err)
	}
	return s, priv
}

func newKey(t *testing.T, role trust.Role) *trust.Signer {
	t.Helper()
	s, _ := ed25519Key(t, role)
	return s
}

func newECDSAKey(t *testing.T, role trust.Role) *trust.Signer {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := trust.NewSigner(role, priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// offline returns the public-only form of an Ed25519 key.
func offline(t *testing.T, role trust.Role, priv ed25519.PrivateKey) *trust.Signer {
	t.Helper()
	s, err := trust.NewOfflineSigner(role, priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// blobs is a TargetStore in memory, by sha256 hex.
type blobs struct {
	mu    sync.Mutex
	files map[string][]byte
}

type readSeekNopCloser struct{ *bytes.Reader }

func (readSeekNopCloser) Close() error { return nil }

func (b *blobs) put(sha256hex string, data []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.files == nil {
		b.files = map[string][]byte{}
	}
	b.files[sha256hex] = data
}

func (b *blobs) Open(_ context.Context, sha256hex string) (io.ReadSeekCloser, int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	data, ok := b.files[sha256hex]
	if !ok {
		return nil, 0, fmt.Errorf("%w: blob %s", trust.ErrNotFound, sha256hex)
	}
	return readSeekNopCloser{bytes.NewReader(data)}, int64(len(data)), nil
}

// target describes data under path with both hashes.
func target(path string, data []byte, custom string) trust.Target {
	s256 := sha256.Sum256(data)
	s512 := sha512.Sum512(data)
	t := trust.Target{
		Path:   path,
		Length: int64(len(data)),
		Hashes: map[string][]byte{"sha256": s256[:], "sha512": s512[:]},
	}
	if custom != "" {
		t.Custom = []byte(custom)
	}
	return t
}

func sha256hex(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// fixture is a repository initialized with one online key per role, served
// over HTTP.
type fixture struct {
	t     *testing.T
	ctx   context.Context
	store *trust.MemStore
	blobs *blobs
	clock *clock.Fake
	repo  *trust.Repository
	keys  map[trust.Role]*trust.Signer
	srv   *httptest.Server
}

func newFixture(t *testing.T, start time.Time) *fixture {
	t.Helper()
	f := &fixture{
		t:     t,
		ctx:   context.Background(),
		store: &trust.MemStore{},
		blobs: &blobs{},
		clock: clock.NewFake(start),
		keys:  map[trust.Role]*trust.Signer{},
	}
	var keys []*trust.Signer
	for _, role := range []trust.Role{trust.RoleRoot, trust.RoleTargets, trust.RoleSnapshot, trust.RoleTimestamp} {
		f.keys[role] = newKey(t, role)
		keys = append(keys, f.keys[role])
	}
	f.repo = f.open(nil)
	if err := f.repo.Init(f.ctx, keys, nil); err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(trust.Handler(f.store, f.blobs))
	t.Cleanup(f.srv.Close)
	return f
}

// open opens the fixture's store with the given private keys.
func (f *fixture) open(signers []*trust.Signer) *trust.Repository {
	f.t.Helper()
	r, err := trust.Open(f.ctx, f.store, trust.Config{Clock: f.clock, Signers: signers})
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

// add stores data as a blob and publishes it as a target.
func (f *fixture) add(path string, data []byte, custom string) trust.Target {
	f.t.Helper()
	tg := target(path, data, custom)
	f.blobs.put(sha256hex(data), data)
	out, err := f.repo.AddTargets(f.ctx, []trust.Target{tg})
	if err != nil {
		f.t.Fatal(err)
	}
	if !out.Published {
		f.t.Fatalf("targets version %d not published", out.Version)
	}
	return tg
}

func (f *fixture) get(name string) []byte {
	f.t.Helper()
	data, err := f.store.Get(f.ctx, name)
	if err != nil {
		f.t.Fatal(err)
	}
	return data
}

func (f *fixture) put(name string, data []byte) {
	f.t.Helper()
	if err := f.store.Put(f.ctx, name, data); err != nil {
		f.t.Fatal(err)
	}
}

// client returns a new go-tuf updater keeping its state in dir. Like a
// device, it starts from the root it trusted last (dir/metadata/root.json)
// or, the first time, from 1.root.json as shipped at manufacture.
func (f *fixture) client(dir string) *updater.Updater {
	f.t.Helper()
	return newClient(f.t, f.srv.URL, dir, func() []byte { return f.get("1.root.json") })
}

func newClient(t *testing.T, url, dir string, firstRoot func() []byte) *updater.Updater {
	t.Helper()
	root, err := os.ReadFile(filepath.Join(dir, "metadata", "root.json"))
	if errors.Is(err, os.ErrNotExist) {
		root = firstRoot()
	} else if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.New(url+"/metadata", root)
	if err != nil {
		t.Fatal(err)
	}
	cfg.LocalMetadataDir = filepath.Join(dir, "metadata")
	cfg.LocalTargetsDir = filepath.Join(dir, "targets")
	cfg.RemoteTargetsURL = url + "/targets"
	up, err := updater.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return up
}

// wantKind fails unless err is a problem of kind k.
func wantKind(t *testing.T, err error, k problem.Kind) {
	t.Helper()
	if err == nil || problem.KindOf(err) != k {
		t.Fatalf("error %v, want problem kind %d", err, k)
	}
}
