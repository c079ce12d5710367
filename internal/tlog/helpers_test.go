package tlog

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/steward-iot/steward/internal/clock"
)

const testOrigin = "steward.example/tlog"

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// newKey returns a signer and verifier for a fresh Ed25519 key named name.
func newKey(t testing.TB, name string) (note.Signer, note.Verifier) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
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

type fixture struct {
	log      *Log
	store    *MemStore
	clock    *clock.Fake
	signer   note.Signer
	verifier note.Verifier
	leaves   [][]byte
	// roots[s] is the root of the tree of size s, from a verified checkpoint.
	roots []Hash
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	s, v := newKey(t, testOrigin)
	f := &fixture{store: NewMemStore(), clock: clock.NewFake(t0), signer: s, verifier: v}
	var err error
	if f.log, err = New(f.store, testOrigin, s, f.clock); err != nil {
		t.Fatal(err)
	}
	f.roots = []Hash{f.checkpoint(t, 0)}
	return f
}

// grow appends n random entries, checking the checkpoint after each.
func (f *fixture) grow(t testing.TB, rng *mrand.Rand, n int) {
	t.Helper()
	ctx := context.Background()
	for range n {
		f.clock.Advance(time.Duration(rng.IntN(1e9)) * time.Microsecond)
		want := int64(len(f.leaves))
		i, err := f.log.Append(ctx, randomEntry(rng))
		if err != nil {
			t.Fatal(err)
		}
		if i != want {
			t.Fatalf("Append returned index %d, want %d", i, want)
		}
		leaf, err := f.log.Leaf(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		f.leaves = append(f.leaves, leaf)
		f.roots = append(f.roots, f.checkpoint(t, i+1))
	}
}

// checkpoint fetches and verifies the log's checkpoint, which must be for size.
func (f *fixture) checkpoint(t testing.TB, size int64) Hash {
	t.Helper()
	cp, err := f.log.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got, root, err := VerifyCheckpoint(cp, f.verifier, testOrigin)
	if err != nil {
		t.Fatalf("VerifyCheckpoint: %v\n%s", err, cp)
	}
	if got != size {
		t.Fatalf("checkpoint size %d, want %d", got, size)
	}
	return root
}

// randomEntry returns a valid entry of random kind and size.
func randomEntry(rng *mrand.Rand) Entry {
	word := func(max int) string {
		b := make([]byte, 1+rng.IntN(max))
		for i := range b {
			b[i] = "abcdefghijklmnopqrstuvwxyz0123456789-._"[rng.IntN(39)]
		}
		return string(b)
	}
	sum := func() string {
		h := sha256.Sum256([]byte(word(40)))
		return hex.EncodeToString(h[:])
	}
	if rng.IntN(3) == 0 {
		return Entry{Kind: KindMetadata, Org: word(20), Role: []string{"root", "targets", "snapshot", "timestamp"}[rng.IntN(4)],
			MetadataVersion: 1 + rng.Int64N(1e6), SHA256: sum()}
	}
	e := Entry{Kind: KindRelease, Org: word(20), Product: word(30), Version: word(12), ReleaseCounter: 1 + rng.Int64N(1e6)}
	for i := range 1 + rng.IntN(20) {
		e.Artifacts = append(e.Artifacts, Artifact{Name: fmt.Sprintf("%s-%d.img", word(40), i), SHA256: sum()})
	}
	return e
}

// compactRoots computes the root of every prefix of leaves with
// transparency-dev/merkle's compact ranges, independently of the log.
func compactRoots(t testing.TB, leaves [][]byte) []Hash {
	t.Helper()
	h := rfc6962.DefaultHasher
	rf := compact.RangeFactory{Hash: h.HashChildren}
	r := rf.NewEmptyRange(0)
	roots := []Hash{Hash(h.EmptyRoot())}
	for _, leaf := range leaves {
		if err := r.Append(h.HashLeaf(leaf), nil); err != nil {
			t.Fatal(err)
		}
		root, err := r.GetRootHash(nil)
		if err != nil {
			t.Fatal(err)
		}
		roots = append(roots, Hash(root))
	}
	return roots
}

// mth is RFC 6962 §2.1's Merkle Tree Hash, written out from the spec as a
// third opinion.
func mth(leaves [][]byte) Hash {
	switch len(leaves) {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return sha256.Sum256(append([]byte{0}, leaves[0]...))
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	l, r := mth(leaves[:k]), mth(leaves[k:])
	return sha256.Sum256(bytes.Join([][]byte{{1}, l[:], r[:]}, nil))
}
