package store_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	sumtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/problem"
	"github.com/steward-iot/steward/internal/store"
	"github.com/steward-iot/steward/internal/store/storetest"
	"github.com/steward-iot/steward/internal/tenancy"
	"github.com/steward-iot/steward/internal/tlog"
)

const tlogOrigin = "steward-tlog/test"

func tlogSigner(t *testing.T) (note.Signer, note.Verifier) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, tlogOrigin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// tlogEntry is the k-th entry of a test sequence: mostly releases, every
// third a metadata version, and every tenth repeats a metadata version so
// that keys have more than one entry.
func tlogEntry(k int) tlog.Entry {
	switch {
	case k%10 == 9:
		return tlog.Entry{Kind: tlog.KindMetadata, Org: "acme", Role: "timestamp", MetadataVersion: int64(k/10 + 1), SHA256: sum(fmt.Sprint("again", k))}
	case k%3 == 2:
		return tlog.Entry{Kind: tlog.KindMetadata, Org: "acme", Role: "timestamp", MetadataVersion: int64(k/10 + 1), SHA256: sum(fmt.Sprint(k))}
	}
	return tlog.Entry{Kind: tlog.KindRelease, Org: "acme", Product: fmt.Sprintf("p%d", k%4), Version: fmt.Sprintf("1.%d", k),
		ReleaseCounter: int64(k + 1), Artifacts: []tlog.Artifact{{Name: "image.img", SHA256: sum(fmt.Sprint("img", k))}}}
}

func TestTLogContract(t *testing.T) {
	tests := []struct {
		name string
		fn   func(t *testing.T, d store.Dialect)
	}{
		{"MatchesMemStore", testTLogMatchesMemStore},
		{"AppendRules", testTLogAppendRules},
		{"ConcurrentAppenders", testTLogConcurrent},
		{"Keys", testTLogKeys},
	}
	for _, d := range storetest.Dialects(t) {
		t.Run(string(d), func(t *testing.T) {
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) { tc.fn(t, d) })
			}
		})
	}
}

// testTLogMatchesMemStore grows the same log on the database and in
// memory: every checkpoint (byte for byte: Ed25519 signs
// deterministically), leaf, proof and lookup must agree, and verify.
func testTLogMatchesMemStore(t *testing.T, d store.Dialect) {
	ctx := context.Background()
	db := storetest.New(t, d, clock.Real)
	var org tenancy.Org
	write(t, db, func(tx *store.Tx) error { org = newOrg(t, tx, "acme"); return nil })
	signer, verifier := tlogSigner(t)
	clk := clock.NewFake(t0)
	dbLog, err := tlog.New(db.TLog(org.ID), tlogOrigin, signer, clk)
	if err != nil {
		t.Fatal(err)
	}
	mem := tlog.NewMemStore()
	memLog, err := tlog.New(mem, tlogOrigin, signer, clk)
	if err != nil {
		t.Fatal(err)
	}
	const n = 150
	roots := []tlog.Hash{}
	checkpoint := func(size int64) {
		t.Helper()
		a, err := dbLog.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		b, err := memLog.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(a) != string(b) {
			t.Fatalf("size %d: database checkpoint\n%s\nin memory\n%s", size, a, b)
		}
		got, root, err := tlog.VerifyCheckpoint(a, verifier, tlogOrigin)
		if err != nil || got != size {
			t.Fatalf("checkpoint of size %d: size %d, %v", size, got, err)
		}
		roots = append(roots, root)
	}
	checkpoint(0)
	for k := range n {
		clk.Advance(time.Duration(k) * time.Millisecond)
		i, err := dbLog.Append(ctx, tlogEntry(k))
		if err != nil {
			t.Fatal(err)
		}
		j, err := memLog.Append(ctx, tlogEntry(k))
		if err != nil {
			t.Fatal(err)
		}
		if i != int64(k) || j != int64(k) {
			t.Fatalf("append %d: database index %d, memory index %d", k, i, j)
		}
		checkpoint(int64(k + 1))
	}
	for i := range int64(n) {
		a, err := dbLog.Leaf(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := memLog.Leaf(ctx, i)
		if string(a) != string(b) {
			t.Fatalf("leaf %d: database %s, memory %s", i, a, b)
		}
		for _, size := range []int64{i + 1, (i + n + 1) / 2, n} {
			p, err := dbLog.InclusionProof(ctx, i, size)
			if err != nil {
				t.Fatal(err)
			}
			if err := tlog.VerifyInclusion(a, i, size, roots[size], p); err != nil {
				t.Fatalf("entry %d in tree %d: %v", i, size, err)
			}
		}
		p, err := dbLog.ConsistencyProof(ctx, i+1, n)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.VerifyConsistency(i+1, n, roots[i+1], roots[n], p); err != nil {
			t.Fatal(err)
		}
	}
	for k := range n {
		key := tlogEntry(k).Key()
		a, err := dbLog.Find(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := memLog.Find(ctx, key)
		if !slices.Equal(a, b) || !slices.Contains(a, int64(k)) {
			t.Fatalf("Find(%s): database %v, memory %v, want %d among them", key, a, b, k)
		}
	}
	if ix, err := dbLog.Find(ctx, tlog.ReleaseKey("p0", 999)); err != nil || ix == nil || len(ix) != 0 {
		t.Fatalf("Find of an absent release: %v %v, want an empty list", ix, err)
	}
}

// testTLogAppendRules checks Store.Append's contract directly: a stale
// size or a wrong hash count stores nothing, and logs of two organizations
// are independent.
func testTLogAppendRules(t *testing.T, d store.Dialect) {
	ctx := context.Background()
	db := storetest.New(t, d, clock.Real)
	var a, b tenancy.Org
	write(t, db, func(tx *store.Tx) error { a, b = newOrg(t, tx, "a"), newOrg(t, tx, "b"); return nil })
	st := db.TLog(a.ID)
	if n, err := st.Size(ctx); err != nil || n != 0 {
		t.Fatalf("empty log: size %d, %v", n, err)
	}
	leaf := func(k int) []byte {
		e := tlogEntry(k)
		e.LoggedAt = t0
		l, err := e.Leaf()
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	mem := tlog.NewMemStore()
	add := func(k int) {
		t.Helper()
		n := int64(k)
		hashes, err := sumtlog.StoredHashes(n, leaf(k), sumtlog.HashReaderFunc(func(ix []int64) ([]tlog.Hash, error) { return mem.ReadHashes(ctx, ix) }))
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Append(ctx, n, leaf(k), hashes); err != nil {
			t.Fatalf("append %d: %v", k, err)
		}
		if err := mem.Append(ctx, n, leaf(k), hashes); err != nil {
			t.Fatal(err)
		}
	}
	for k := range 3 {
		add(k)
	}
	// Entry 3 needs three stored hashes (a leaf and two parents).
	h3, err := sumtlog.StoredHashes(3, leaf(3), sumtlog.HashReaderFunc(func(ix []int64) ([]tlog.Hash, error) { return mem.ReadHashes(ctx, ix) }))
	if err != nil || len(h3) != 3 {
		t.Fatalf("stored hashes of entry 3: %d, %v", len(h3), err)
	}
	for _, n := range []int64{0, 2, 4} {
		// Hashes of the right count for n, so only the size is wrong.
		count := sumtlog.StoredHashCount(n+1) - sumtlog.StoredHashCount(n)
		if err := st.Append(ctx, n, leaf(3), h3[:count]); !errors.Is(err, tlog.ErrConflict) {
			t.Errorf("append as entry %d of a 3-entry log: %v, want ErrConflict", n, err)
		}
	}
	if err := st.Append(ctx, 3, leaf(3), h3[:2]); err == nil || errors.Is(err, tlog.ErrConflict) {
		t.Errorf("append with too few hashes: %v, want a refusal", err)
	}
	if err := st.Append(ctx, 3, []byte(`{"kind":"release"}`), h3); err == nil {
		t.Error("append of a leaf that is not an entry succeeded")
	}
	if n, err := st.Size(ctx); err != nil || n != 3 {
		t.Fatalf("after refused appends: size %d, %v; want 3", n, err)
	}
	if _, err := st.Leaf(ctx, 3); err == nil {
		t.Error("a refused append left a leaf")
	}
	if _, err := st.ReadHashes(ctx, []int64{sumtlog.StoredHashIndex(0, 3)}); err == nil {
		t.Error("a refused append left a stored hash")
	}
	add(3)
	all := make([]int64, sumtlog.StoredHashCount(4))
	for i := range all {
		all[i] = int64(i)
	}
	got, err := st.ReadHashes(ctx, all)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := mem.ReadHashes(ctx, all)
	if !slices.Equal(got, want) {
		t.Fatalf("stored hashes %x, want %x", got, want)
	}
	// The other organization's log is empty and takes its own entry 0.
	other := db.TLog(b.ID)
	if n, err := other.Size(ctx); err != nil || n != 0 {
		t.Fatalf("org b's log: size %d, %v", n, err)
	}
	empty := tlog.NewMemStore()
	h0, _ := sumtlog.StoredHashes(0, leaf(0), sumtlog.HashReaderFunc(func(ix []int64) ([]tlog.Hash, error) { return empty.ReadHashes(ctx, ix) }))
	if err := other.Append(ctx, 0, leaf(0), h0); err != nil {
		t.Fatal(err)
	}
	if ix, err := other.Find(ctx, tlogEntry(1).Key()); err != nil || len(ix) != 0 {
		t.Fatalf("org b's log finds org a's entry: %v %v", ix, err)
	}
	if n, _ := st.Size(ctx); n != 4 {
		t.Fatalf("org a's log: size %d after org b's append, want 4", n)
	}
}

// testTLogConcurrent appends from several Logs over two database handles,
// as replicas of the server would: each append must land exactly once and
// the tree must be the one its leaves define.
func testTLogConcurrent(t *testing.T, d store.Dialect) {
	ctx := context.Background()
	dsn := storetest.DSN(t, d)
	var dbs []*store.DB
	for range 2 {
		db, err := store.Open(ctx, dsn, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		dbs = append(dbs, db)
	}
	if _, err := dbs[0].Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var org tenancy.Org
	write(t, dbs[0], func(tx *store.Tx) error { org = newOrg(t, tx, "acme"); return nil })
	signer, verifier := tlogSigner(t)

	const workers, each = 8, 20
	indexes := make([][]int64, workers)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		// One Log per worker: its in-process lock does not serialize it
		// with the others, only the database does.
		l, err := tlog.New(dbs[w%2].TLog(org.ID), tlogOrigin, signer, clock.Real)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			for k := range each {
				e := tlog.Entry{Kind: tlog.KindRelease, Org: "acme", Product: fmt.Sprintf("w%d", w), Version: fmt.Sprintf("1.%d", k),
					ReleaseCounter: int64(k + 1), Artifacts: []tlog.Artifact{{Name: "image.img", SHA256: sum(fmt.Sprint(w, k))}}}
				i, err := l.Append(ctx, e)
				if err != nil {
					errs <- fmt.Errorf("worker %d append %d: %w", w, k, err)
					return
				}
				indexes[w] = append(indexes[w], i)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	var all []int64
	for _, ix := range indexes {
		all = append(all, ix...)
	}
	slices.Sort(all)
	for i, x := range all {
		if x != int64(i) {
			t.Fatalf("indexes are not 0..%d without gaps or repeats: position %d holds %d", len(all)-1, i, x)
		}
	}
	n := int64(len(all))
	st := dbs[1].TLog(org.ID)
	// Replaying the stored leaves in memory must give every stored hash.
	mem := tlog.NewMemStore()
	memLog, err := tlog.New(mem, tlogOrigin, signer, clock.Real)
	if err != nil {
		t.Fatal(err)
	}
	leaves := make([][]byte, n)
	for i := range n {
		if leaves[i], err = st.Leaf(ctx, i); err != nil {
			t.Fatal(err)
		}
		hashes, err := sumtlog.StoredHashes(i, leaves[i], sumtlog.HashReaderFunc(func(ix []int64) ([]tlog.Hash, error) { return mem.ReadHashes(ctx, ix) }))
		if err != nil {
			t.Fatal(err)
		}
		if err := mem.Append(ctx, i, leaves[i], hashes); err != nil {
			t.Fatal(err)
		}
	}
	all = all[:0]
	for i := range sumtlog.StoredHashCount(n) {
		all = append(all, i)
	}
	got, err := st.ReadHashes(ctx, all)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := mem.ReadHashes(ctx, all)
	if !slices.Equal(got, want) {
		t.Fatal("the stored hashes differ from those the stored leaves define: the tree forked")
	}
	l, _ := tlog.New(st, tlogOrigin, signer, clock.Real)
	cp, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	size, root, err := tlog.VerifyCheckpoint(cp, verifier, tlogOrigin)
	if err != nil || size != n {
		t.Fatalf("final checkpoint: size %d, %v; want %d", size, err, n)
	}
	memCP, _ := memLog.Checkpoint(ctx)
	if string(memCP) != string(cp) {
		t.Fatalf("checkpoint\n%s\nreplayed in memory\n%s", cp, memCP)
	}
	for w, ix := range indexes {
		for k, i := range ix {
			e, err := tlog.ParseEntry(leaves[i])
			if err != nil {
				t.Fatal(err)
			}
			if e.Product != fmt.Sprintf("w%d", w) || e.Version != fmt.Sprintf("1.%d", k) {
				t.Fatalf("index %d holds %s %s, but was returned for w%d 1.%d", i, e.Product, e.Version, w, k)
			}
			p, err := l.InclusionProof(ctx, i, n)
			if err != nil {
				t.Fatal(err)
			}
			if err := tlog.VerifyInclusion(leaves[i], i, n, root, p); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// testTLogKeys: a missing key is NotFound; racing creators (two replicas
// starting at once) all end up with the one key that was stored.
func testTLogKeys(t *testing.T, d store.Dialect) {
	ctx := context.Background()
	db := storetest.New(t, d, clock.Real)
	var org tenancy.Org
	write(t, db, func(tx *store.Tx) error { org = newOrg(t, tx, "acme"); return nil })
	if _, _, err := db.TLogKey(ctx, org.ID, nil); !problem.Is(err, problem.KindNotFound) {
		t.Fatalf("missing key: %v, want NotFound", err)
	}
	const racers = 6
	type pair struct{ signer, verifier string }
	got := make([]pair, racers)
	var wg sync.WaitGroup
	for r := range racers {
		wg.Go(func() {
			s, v, err := db.TLogKey(ctx, org.ID, func() (string, string, error) {
				return note.GenerateKey(rand.Reader, fmt.Sprintf("%s-%d", tlogOrigin, r))
			})
			if err != nil {
				t.Error(err)
			}
			got[r] = pair{s, v}
		})
	}
	wg.Wait()
	for r := range racers {
		if got[r] != got[0] || got[r].verifier == "" {
			t.Fatalf("creator %d got key %q, creator 0 got %q: want one key", r, got[r].verifier, got[0].verifier)
		}
	}
	s, v, err := db.TLogKey(ctx, org.ID, nil)
	if err != nil || s != got[0].signer || v != got[0].verifier {
		t.Fatalf("stored key %q, %v; want %q", v, err, got[0].verifier)
	}
	signer, err := note.NewSigner(s)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := note.NewVerifier(v)
	if err != nil || signer.KeyHash() != verifier.KeyHash() || signer.Name() != verifier.Name() {
		t.Fatalf("stored signer and verifier are not a pair: %v", err)
	}
}
