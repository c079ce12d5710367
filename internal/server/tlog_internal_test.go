package server

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/store"
	"github.com/steward-iot/steward/internal/store/storetest"
	"github.com/steward-iot/steward/internal/tenancy"
	"github.com/steward-iot/steward/internal/tlog"
	"github.com/steward-iot/steward/internal/trust"
)

// checkingMeta is a metadata store that, at the first Put of each name,
// records whether the file was already in the log.
type checkingMeta struct {
	trust.MemStore
	t      *testing.T
	logs   *tlogs
	orgID  string
	logged map[string]bool // by name, at the time of its Put
}

func (m *checkingMeta) Put(ctx context.Context, name string, data []byte) error {
	role, version, ok, err := servedVersion(name, data)
	if err != nil {
		m.t.Fatal(err)
	}
	if _, seen := m.logged[name]; ok && !seen {
		m.logged[name] = hasEntry(m.t, m.logs, m.orgID, role, version, data) == 1
	}
	return m.MemStore.Put(ctx, name, data)
}

// hasEntry counts the log's entries for this exact metadata file.
func hasEntry(t *testing.T, logs *tlogs, orgID, role string, version int64, data []byte) int {
	t.Helper()
	ctx := context.Background()
	l, err := logs.get(ctx, orgID, false)
	if err != nil {
		t.Fatal(err)
	}
	ix, err := l.Find(ctx, tlog.MetadataKey(role, version))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	n := 0
	for _, i := range ix {
		leaf, err := l.Leaf(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		e, err := tlog.ParseEntry(leaf)
		if err != nil {
			t.Fatal(err)
		}
		if e.SHA256 == hex.EncodeToString(sum[:]) {
			n++
		}
	}
	return n
}

// TestMetadataLoggedBeforeServed drives a real TUF repository through a
// metadata store wrapped by the log: every served file is in the log by
// the time it is written, staged files and the root.json copy are not
// logged, rewriting identical bytes logs nothing new, and a failing log
// keeps the file from being written at all.
func TestMetadataLoggedBeforeServed(t *testing.T) {
	ctx := context.Background()
	db := storetest.New(t, store.SQLite, clock.Real)
	org, _, _, err := tenancy.NewService(db.Tenancy(), clock.Real).Bootstrap(ctx, "acme", "Acme")
	if err != nil {
		t.Fatal(err)
	}
	logs := newTLogs(db, clock.Real)
	inner := &checkingMeta{t: t, logs: logs, orgID: org.ID, logged: map[string]bool{}}
	meta := logs.metaStores(func(string) trust.MetaStore { return inner })(org.ID)
	// The log must exist before the checking store can look into it.
	if _, err := logs.get(ctx, org.ID, true); err != nil {
		t.Fatal(err)
	}

	keys := map[trust.Role]int{trust.RoleRoot: 1, trust.RoleTargets: 1, trust.RoleSnapshot: 1, trust.RoleTimestamp: 1}
	var signers []*trust.Signer
	for role := range keys {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		sg, err := trust.NewSigner(role, priv)
		if err != nil {
			t.Fatal(err)
		}
		signers = append(signers, sg)
	}
	repo, err := trust.Open(ctx, meta, trust.Config{Clock: clock.Real})
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.Init(ctx, signers, keys); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.AddTargets(ctx, []trust.Target{{Path: "gw/1.0.0/fw.img", Length: 3,
		Hashes: map[string][]byte{"sha256": make([]byte, 32)}}}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"1.root.json", "1.targets.json", "1.snapshot.json", "2.targets.json", "2.snapshot.json"} {
		if logged, ok := inner.logged[name]; !ok || !logged {
			t.Errorf("%s: written %v, in the log when written %v", name, ok, logged)
		}
	}
	if !inner.logged["timestamp.json"] {
		t.Error("timestamp.json was written before its entry was logged")
	}

	l, _ := logs.get(ctx, org.ID, false)
	before, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// root.json (a copy) and staged files are not separate versions.
	for _, name := range []string{"root.json", "staged.targets.json"} {
		if err := meta.Put(ctx, name, []byte(`{"signed":{"version":9}}`)); err != nil {
			t.Fatal(err)
		}
	}
	// A retried write of the same bytes appends nothing.
	data, err := inner.Get(ctx, "2.targets.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := meta.Put(ctx, "2.targets.json", data); err != nil {
		t.Fatal(err)
	}
	if after, _ := l.Checkpoint(ctx); string(after) != string(before) {
		t.Errorf("copies, staged files or a repeated write grew the log:\n%s\n%s", before, after)
	}
	if n := hasEntry(t, logs, org.ID, "targets", 2, data); n != 1 {
		t.Errorf("2.targets.json has %d entries, want 1", n)
	}
	// A version signed again with other bytes is logged again.
	if err := meta.Put(ctx, "2.targets.json", append(data, ' ')); err != nil {
		t.Fatal(err)
	}
	if n := hasEntry(t, logs, org.ID, "targets", 2, append(data, ' ')); n != 1 {
		t.Errorf("re-signed 2.targets.json has %d entries, want 1", n)
	}

	// No log, no file: an organization the log cannot open.
	broken := logs.metaStores(func(string) trust.MetaStore { return inner })("01900000-0000-7000-8000-000000000000")
	if err := broken.Put(ctx, "3.targets.json", data); err == nil {
		t.Fatal("Put succeeded without a log")
	}
	if _, err := inner.Get(ctx, "3.targets.json"); !errors.Is(err, trust.ErrNotFound) {
		t.Fatalf("3.targets.json was stored although logging it failed: %v", err)
	}
	if err := meta.Put(ctx, "timestamp.json", []byte(`{"signed":{}}`)); err == nil {
		t.Fatal("a timestamp without a version was stored")
	}
}
