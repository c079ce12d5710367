package tlog

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math/bits"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
	sumtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/problem"
)

func logSize(t testing.TB) int {
	if testing.Short() {
		return 200
	}
	return 1000
}

// TestRootsAgree checks every checkpoint root against transparency-dev's
// compact ranges and, for small trees, against RFC 6962's definition.
func TestRootsAgree(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(1, 2))
	f := newFixture(t)
	f.grow(t, rng, logSize(t))
	want := compactRoots(t, f.leaves)
	for s, root := range f.roots {
		if root != want[s] {
			t.Fatalf("size %d: checkpoint root %x, transparency-dev computes %x", s, root, want[s])
		}
		if s <= 70 || s == len(f.leaves) {
			if m := mth(f.leaves[:s]); root != m {
				t.Fatalf("size %d: checkpoint root %x, RFC 6962 MTH %x", s, root, m)
			}
		}
	}
	if f.roots[0] != Hash(rfc6962.DefaultHasher.EmptyRoot()) {
		t.Errorf("empty tree root %x, want SHA-256 of nothing", f.roots[0])
	}
}

// TestInclusionAtEveryLaterSize verifies the inclusion proofs of a sample
// of entries against every checkpoint size that contains them, with both
// libraries, and every entry against the final checkpoint.
func TestInclusionAtEveryLaterSize(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(3, 4))
	f := newFixture(t)
	n := int64(logSize(t))
	f.grow(t, rng, int(n))
	ctx := context.Background()

	sample := map[int64]bool{0: true, 1: true, 2: true, n - 2: true, n - 1: true}
	for p := int64(1); p < n; p *= 2 {
		sample[p-1], sample[p], sample[min(p+1, n-1)] = true, true, true
	}
	for len(sample) < 60 {
		sample[rng.Int64N(n)] = true
	}
	checked := 0
	for i := range sample {
		for size := i + 1; size <= n; size++ {
			p, err := f.log.InclusionProof(ctx, i, size)
			if err != nil {
				t.Fatal(err)
			}
			if err := VerifyInclusion(f.leaves[i], i, size, f.roots[size], p); err != nil {
				t.Fatalf("entry %d, size %d: %v", i, size, err)
			}
			if err := sumtlog.CheckRecord(p, size, f.roots[size], i, sumtlog.RecordHash(f.leaves[i])); err != nil {
				t.Fatalf("entry %d, size %d: x/mod rejects the proof: %v", i, size, err)
			}
			if max := bits.Len64(uint64(size - 1)); len(p) > max {
				t.Fatalf("entry %d, size %d: proof has %d hashes, more than %d", i, size, len(p), max)
			}
			checked++
		}
	}
	for i := range n {
		p, err := f.log.InclusionProof(ctx, i, n)
		if err != nil {
			t.Fatal(err)
		}
		if err := VerifyInclusion(f.leaves[i], i, n, f.roots[n], p); err != nil {
			t.Fatalf("entry %d, size %d: %v", i, n, err)
		}
	}
	t.Logf("%d entries, %d sampled proofs verified", n, checked)
}

func TestConsistencyProofs(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(5, 6))
	f := newFixture(t)
	n := int64(logSize(t))
	f.grow(t, rng, int(n))
	ctx := context.Background()

	type pair struct{ old, new int64 }
	var pairs []pair
	for old := range int64(41) {
		for size := old; size <= 40; size++ {
			pairs = append(pairs, pair{old, size})
		}
	}
	for range 3000 {
		a, b := rng.Int64N(n+1), rng.Int64N(n+1)
		pairs = append(pairs, pair{min(a, b), max(a, b)})
	}
	pairs = append(pairs, pair{0, n}, pair{1, n}, pair{n - 1, n}, pair{n, n})

	for _, pr := range pairs {
		p, err := f.log.ConsistencyProof(ctx, pr.old, pr.new)
		if err != nil {
			t.Fatal(err)
		}
		if err := VerifyConsistency(pr.old, pr.new, f.roots[pr.old], f.roots[pr.new], p); err != nil {
			t.Fatalf("%d → %d: %v", pr.old, pr.new, err)
		}
		if pr.old > 0 {
			if err := sumtlog.CheckTree(p, pr.new, f.roots[pr.new], pr.old, f.roots[pr.old]); err != nil {
				t.Fatalf("%d → %d: x/mod rejects the proof: %v", pr.old, pr.new, err)
			}
		}
		if pr.old == 0 || pr.old == pr.new {
			if len(p) != 0 {
				t.Fatalf("%d → %d: want an empty proof, got %d hashes", pr.old, pr.new, len(p))
			}
			continue
		}
		// The same proof must not vouch for other roots or sizes.
		if err := VerifyConsistency(pr.old, pr.new, f.roots[pr.old-1], f.roots[pr.new], p); err == nil {
			t.Fatalf("%d → %d: proof accepted with the root of size %d as the old root", pr.old, pr.new, pr.old-1)
		}
		if err := VerifyConsistency(pr.old, pr.new, f.roots[pr.old], f.roots[pr.new-1], p); err == nil {
			t.Fatalf("%d → %d: proof accepted with the root of size %d as the new root", pr.old, pr.new, pr.new-1)
		}
		if pr.old+1 < pr.new {
			if err := VerifyConsistency(pr.old+1, pr.new, f.roots[pr.old+1], f.roots[pr.new], p); err == nil {
				t.Fatalf("%d → %d: proof accepted for old size %d", pr.old, pr.new, pr.old+1)
			}
		}
		if len(p) > 0 {
			bad := slices.Clone(p)
			bad[rng.IntN(len(bad))][rng.IntN(HashSize)] ^= 1
			if err := VerifyConsistency(pr.old, pr.new, f.roots[pr.old], f.roots[pr.new], bad); err == nil {
				t.Fatalf("%d → %d: proof with a flipped bit accepted", pr.old, pr.new)
			}
		}
	}
	if err := VerifyConsistency(5, 4, f.roots[5], f.roots[4], nil); err == nil {
		t.Error("VerifyConsistency accepted a shrinking tree")
	}
}

func TestInclusionTampering(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(7, 8))
	f := newFixture(t)
	f.grow(t, rng, 100)
	ctx := context.Background()
	const size = 100
	root := f.roots[size]
	proofOf := func(i int64) []Hash {
		p, err := f.log.InclusionProof(ctx, i, size)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := proofOf(37)
	if err := VerifyInclusion(f.leaves[37], 37, size, root, p); err != nil {
		t.Fatalf("untouched proof: %v", err)
	}

	modified := bytes.Clone(f.leaves[37])
	modified[len(modified)/2] ^= 1
	flipped := slices.Clone(p)
	flipped[2][0] ^= 0x80
	cases := []struct {
		name  string
		leaf  []byte
		index int64
		size  int64
		root  Hash
		proof []Hash
	}{
		{"modified leaf", modified, 37, size, root, p},
		{"another entry's leaf", f.leaves[38], 37, size, root, p},
		{"proof for another index", f.leaves[37], 37, size, root, proofOf(36)},
		{"leaf moved to another index", f.leaves[37], 36, size, root, p},
		{"root of another size", f.leaves[37], 37, size, f.roots[size-1], p},
		{"proof claimed for a smaller tree", f.leaves[37], 37, size - 1, f.roots[size-1], p},
		{"modified proof hash", f.leaves[37], 37, size, root, flipped},
		{"truncated proof", f.leaves[37], 37, size, root, p[:len(p)-1]},
		{"extended proof", f.leaves[37], 37, size, root, append(slices.Clone(p), root)},
		{"empty proof", f.leaves[37], 37, size, root, nil},
		{"index beyond size", f.leaves[37], size, size, root, p},
		{"negative index", f.leaves[37], -1, size, root, p},
		{"leaf hash instead of leaf", rfc6962.DefaultHasher.HashLeaf(f.leaves[37]), 37, size, root, p},
	}
	for _, c := range cases {
		if err := VerifyInclusion(c.leaf, c.index, c.size, c.root, c.proof); err == nil {
			t.Errorf("%s: VerifyInclusion accepted it", c.name)
		}
	}
}

func TestCheckpointFormat(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()

	cp, err := f.log.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(cp, note.VerifierList(f.verifier))
	if err != nil {
		t.Fatal(err)
	}
	// SHA-256 of the empty string, as RFC 6962 defines the empty tree.
	if want := testOrigin + "\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"; n.Text != want {
		t.Errorf("empty log checkpoint text %q, want %q", n.Text, want)
	}

	f.grow(t, mrand.New(mrand.NewPCG(9, 10)), 3)
	cp, err = f.log.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n, err = note.Open(cp, note.VerifierList(f.verifier))
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%s\n3\n%s\n", testOrigin, base64.StdEncoding.EncodeToString(f.roots[3][:]))
	if n.Text != want {
		t.Errorf("checkpoint text %q, want %q", n.Text, want)
	}
	if len(n.Sigs) != 1 || n.Sigs[0].Name != testOrigin || n.Sigs[0].Hash != f.verifier.KeyHash() {
		t.Errorf("signatures %+v, want one by %s", n.Sigs, testOrigin)
	}
	if !bytes.HasPrefix(cp, []byte(want+"\n— "+testOrigin+" ")) {
		t.Errorf("checkpoint is not a signed note of its text:\n%s", cp)
	}

	again, err := f.log.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, cp) {
		t.Error("two checkpoints of the same size differ")
	}

	// A key with the same name but other bits is not the log's key.
	_, other := newKey(t, testOrigin)
	_, err = note.Open(cp, note.VerifierList(other))
	var unverified *note.UnverifiedNoteError
	if !errors.As(err, &unverified) {
		t.Errorf("note.Open with the wrong key: err = %v, want UnverifiedNoteError", err)
	}
	if _, _, err := VerifyCheckpoint(cp, other, testOrigin); !errors.As(err, &unverified) {
		t.Errorf("VerifyCheckpoint with the wrong key: err = %v, want UnverifiedNoteError", err)
	}
}

func TestVerifyCheckpointRejects(t *testing.T) {
	f := newFixture(t)
	f.grow(t, mrand.New(mrand.NewPCG(11, 12)), 5)
	cp, err := f.log.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	root5 := base64.StdEncoding.EncodeToString(f.roots[5][:])
	root4 := base64.StdEncoding.EncodeToString(f.roots[4][:])

	forged := bytes.Replace(cp, []byte(root5), []byte(root4), 1)
	var invalid *note.InvalidSignatureError
	if _, _, err := VerifyCheckpoint(forged, f.verifier, testOrigin); !errors.As(err, &invalid) {
		t.Errorf("root changed, signature kept: err = %v, want InvalidSignatureError", err)
	}
	resized := bytes.Replace(cp, []byte("\n5\n"), []byte("\n4\n"), 1)
	if _, _, err := VerifyCheckpoint(resized, f.verifier, testOrigin); !errors.As(err, &invalid) {
		t.Errorf("size changed, signature kept: err = %v, want InvalidSignatureError", err)
	}
	if _, _, err := VerifyCheckpoint(cp, f.verifier, "steward.example/other"); err == nil || !strings.Contains(err.Error(), "from log") {
		t.Errorf("origin mismatch: err = %v", err)
	}
	if _, _, err := VerifyCheckpoint(cp, nil, testOrigin); err == nil {
		t.Error("nil verifier accepted")
	}

	// Another log whose key name matches ours cannot stand in for it, and
	// one that signs under our origin with its own key neither.
	otherSigner, _ := newKey(t, testOrigin)
	other, err := New(NewMemStore(), testOrigin, otherSigner, clock.NewFake(t0))
	if err != nil {
		t.Fatal(err)
	}
	ocp, err := other.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := VerifyCheckpoint(ocp, f.verifier, testOrigin); err == nil {
		t.Error("checkpoint signed by another key accepted")
	}

	// Texts signed by the right key that are still not checkpoints.
	sign := func(text string) []byte {
		b, err := note.Sign(&note.Note{Text: text}, f.signer)
		if err != nil {
			t.Fatalf("signing %q: %v", text, err)
		}
		return b
	}
	o := testOrigin + "\n"
	bad := map[string]string{
		"two lines":             o + "5\n",
		"leading zero":          o + "05\n" + root5 + "\n",
		"plus sign":             o + "+5\n" + root5 + "\n",
		"negative size":         o + "-5\n" + root5 + "\n",
		"hex size":              o + "0x5\n" + root5 + "\n",
		"size with space":       o + " 5\n" + root5 + "\n",
		"huge size":             o + "99999999999999999999\n" + root5 + "\n",
		"short root":            o + "5\n" + root5[:40] + "\n",
		"unpadded root":         o + "5\n" + strings.TrimRight(root5, "=") + "\n",
		"url-safe root":         o + "5\n" + base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 32)) + "\n",
		"non-canonical base64":  o + "5\n" + root5[:42] + nextB64(root5[42]) + "=\n",
		"48-byte root":          o + "5\n" + base64.StdEncoding.EncodeToString(make([]byte, 48)) + "\n",
		"empty origin":          "\n5\n" + root5 + "\n",
		"other origin":          "steward.example/other\n5\n" + root5 + "\n",
		"root and size swapped": o + root5 + "\n5\n",
	}
	for name, text := range bad {
		if _, _, err := VerifyCheckpoint(sign(text), f.verifier, testOrigin); err == nil {
			t.Errorf("%s: accepted %q", name, text)
		}
	}

	// Extension lines are opaque and allowed; witness cosignatures are
	// ignored.
	size, root, err := VerifyCheckpoint(sign(o+"5\n"+root5+"\nsome extension\n"), f.verifier, testOrigin)
	if err != nil || size != 5 || root != f.roots[5] {
		t.Errorf("checkpoint with an extension line: %d %x %v", size, root, err)
	}
	witness, _ := newKey(t, "witness.example")
	n, err := note.Open(cp, note.VerifierList(f.verifier))
	if err != nil {
		t.Fatal(err)
	}
	cosigned, err := note.Sign(n, witness)
	if err != nil {
		t.Fatal(err)
	}
	if size, _, err := VerifyCheckpoint(cosigned, f.verifier, testOrigin); err != nil || size != 5 {
		t.Errorf("cosigned checkpoint: %d %v", size, err)
	}
}

// nextB64 returns the base64 digit after c, which for the last digit of a
// 32-byte value sets a padding bit lenient decoders ignore.
func nextB64(c byte) string {
	const digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	return string(digits[(strings.IndexByte(digits, c)+1)%64])
}

func TestLogArguments(t *testing.T) {
	f := newFixture(t)
	f.grow(t, mrand.New(mrand.NewPCG(13, 14)), 10)
	ctx := context.Background()
	kind := func(err error) string {
		switch {
		case err == nil:
			return "ok"
		case problem.Is(err, problem.KindInvalid):
			return "invalid"
		case problem.Is(err, problem.KindNotFound):
			return "not found"
		}
		return "other: " + err.Error()
	}
	leaf := func(i int64) error { _, err := f.log.Leaf(ctx, i); return err }
	incl := func(i, s int64) error { _, err := f.log.InclusionProof(ctx, i, s); return err }
	cons := func(o, n int64) error { _, err := f.log.ConsistencyProof(ctx, o, n); return err }
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"leaf 9", leaf(9), "ok"},
		{"leaf 10", leaf(10), "not found"},
		{"leaf -1", leaf(-1), "invalid"},
		{"inclusion 9 in 10", incl(9, 10), "ok"},
		{"inclusion 0 in 1", incl(0, 1), "ok"},
		{"inclusion 10 in 10", incl(10, 10), "invalid"},
		{"inclusion -1 in 10", incl(-1, 10), "invalid"},
		{"inclusion 0 in 0", incl(0, 0), "invalid"},
		{"inclusion 3 in 11", incl(3, 11), "not found"},
		{"consistency 0 → 10", cons(0, 10), "ok"},
		{"consistency 10 → 10", cons(10, 10), "ok"},
		{"consistency 0 → 0", cons(0, 0), "ok"},
		{"consistency 5 → 4", cons(5, 4), "invalid"},
		{"consistency -1 → 4", cons(-1, 4), "invalid"},
		{"consistency 5 → 11", cons(5, 11), "not found"},
	}
	for _, c := range cases {
		if got := kind(c.err); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
	p, err := f.log.InclusionProof(ctx, 0, 1)
	if err != nil || len(p) != 0 {
		t.Errorf("proof for a one-entry tree: %v, %v; want empty", p, err)
	}
}

func TestNew(t *testing.T) {
	s, _ := newKey(t, testOrigin)
	clk := clock.NewFake(t0)
	if _, err := New(NewMemStore(), "steward.example/other", s, clk); err == nil {
		t.Error("New accepted a signer named differently from the origin")
	}
	if _, err := New(NewMemStore(), "", s, clk); err == nil {
		t.Error("New accepted an empty origin")
	}
	if _, err := New(nil, testOrigin, s, clk); err == nil {
		t.Error("New accepted a nil store")
	}
	if _, err := New(NewMemStore(), testOrigin, s, nil); err == nil {
		t.Error("New accepted a nil clock")
	}
	l, err := New(NewMemStore(), testOrigin, s, clk)
	if err != nil || l.Origin() != testOrigin {
		t.Errorf("New: %v, origin %q", err, l.Origin())
	}
}

func TestAppendStampsAndValidates(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.log.Append(ctx, Entry{Kind: KindRelease, Org: "acme"}); !problem.Is(err, problem.KindInvalid) {
		t.Fatalf("invalid entry: err = %v, want KindInvalid", err)
	}
	if n, _ := f.store.Size(ctx); n != 0 {
		t.Fatalf("a rejected entry left the log with %d entries", n)
	}
	e := Entry{Kind: KindMetadata, Org: "acme", Role: "timestamp", MetadataVersion: 7, SHA256: strings.Repeat("ab", 32)}
	i, err := f.log.Append(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := f.log.Leaf(ctx, i)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseEntry(leaf)
	if err != nil {
		t.Fatal(err)
	}
	if !got.LoggedAt.Equal(t0) || got.Role != "timestamp" || got.MetadataVersion != 7 {
		t.Errorf("logged entry %+v, want the input stamped with %v", got, t0)
	}
}

// TestConcurrentAppend appends from many goroutines: every entry gets its
// own index, lands at that index, and the tree stays one consistent tree.
func TestConcurrentAppend(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	const workers, each = 16, 40
	var wg sync.WaitGroup
	indexes := make([][]int64, workers)
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for k := range each {
				e := Entry{Kind: KindRelease, Org: "acme", Product: fmt.Sprintf("w%d", w), Version: fmt.Sprintf("1.0.%d", k),
					ReleaseCounter: int64(k + 1), Artifacts: []Artifact{{Name: "image", SHA256: strings.Repeat("0", 64)}}}
				i, err := f.log.Append(ctx, e)
				if err != nil {
					errs <- err
					return
				}
				indexes[w] = append(indexes[w], i)
				if k%10 == 0 {
					if _, err := f.log.Checkpoint(ctx); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	checkConcurrentResult(t, f, indexes)
}

// TestConcurrentLogsShareStore runs two Logs over one store, as two server
// replicas over one database would: Store.Append's size check makes the
// loser of each race retry instead of forking the tree.
func TestConcurrentLogsShareStore(t *testing.T) {
	f := newFixture(t)
	second, err := New(f.store, testOrigin, f.signer, f.clock)
	if err != nil {
		t.Fatal(err)
	}
	logs := []*Log{f.log, second}
	ctx := context.Background()
	const workers, each = 8, 40
	var wg sync.WaitGroup
	indexes := make([][]int64, workers)
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for k := range each {
				e := Entry{Kind: KindRelease, Org: "acme", Product: fmt.Sprintf("w%d", w), Version: fmt.Sprintf("1.0.%d", k),
					ReleaseCounter: int64(k + 1), Artifacts: []Artifact{{Name: "image", SHA256: strings.Repeat("0", 64)}}}
				i, err := logs[w%2].Append(ctx, e)
				if err != nil {
					errs <- err
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
	checkConcurrentResult(t, f, indexes)
}

func checkConcurrentResult(t *testing.T, f *fixture, indexes [][]int64) {
	t.Helper()
	ctx := context.Background()
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
	cp, err := f.log.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	size, root, err := VerifyCheckpoint(cp, f.verifier, testOrigin)
	if err != nil || size != n {
		t.Fatalf("final checkpoint: size %d, %v; want %d", size, err, n)
	}
	leaves := make([][]byte, n)
	for i := range n {
		if leaves[i], err = f.log.Leaf(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	if want := compactRoots(t, leaves)[n]; root != want {
		t.Fatalf("root %x, transparency-dev computes %x from the stored leaves", root, want)
	}
	for w, ix := range indexes {
		for k, i := range ix {
			e, err := ParseEntry(leaves[i])
			if err != nil {
				t.Fatal(err)
			}
			if e.Product != fmt.Sprintf("w%d", w) || e.Version != fmt.Sprintf("1.0.%d", k) {
				t.Fatalf("index %d holds %s %s, but was returned for w%d 1.0.%d", i, e.Product, e.Version, w, k)
			}
			p, err := f.log.InclusionProof(ctx, i, n)
			if err != nil {
				t.Fatal(err)
			}
			if err := VerifyInclusion(leaves[i], i, n, root, p); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// racingStore lets another writer append just before this one's first
// append, the way a second server would.
type racingStore struct {
	*MemStore
	other *Log
	once  sync.Once
}

func (s *racingStore) Append(ctx context.Context, n int64, leaf []byte, hashes []Hash) error {
	var err error
	s.once.Do(func() {
		_, err = s.other.Append(ctx, Entry{Kind: KindMetadata, Org: "acme", Role: "root", MetadataVersion: 1, SHA256: strings.Repeat("1", 64)})
	})
	if err != nil {
		return err
	}
	return s.MemStore.Append(ctx, n, leaf, hashes)
}

func TestAppendRetriesAfterConflict(t *testing.T) {
	f := newFixture(t)
	rs := &racingStore{MemStore: f.store, other: f.log}
	l, err := New(rs, testOrigin, f.signer, f.clock)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	i, err := l.Append(ctx, Entry{Kind: KindMetadata, Org: "acme", Role: "targets", MetadataVersion: 1, SHA256: strings.Repeat("2", 64)})
	if err != nil {
		t.Fatal(err)
	}
	if i != 1 {
		t.Fatalf("index %d, want 1 (after the other writer's entry)", i)
	}
	for j, role := range []string{"root", "targets"} {
		leaf, err := l.Leaf(ctx, int64(j))
		if err != nil {
			t.Fatal(err)
		}
		if e, err := ParseEntry(leaf); err != nil || e.Role != role {
			t.Fatalf("entry %d: %+v %v, want role %s", j, e, err, role)
		}
	}
	root := compactRoots(t, [][]byte{mustLeaf(t, l, 0), mustLeaf(t, l, 1)})[2]
	if got := f.checkpoint(t, 2); got != root {
		t.Fatalf("root %x, want %x", got, root)
	}
}

func mustLeaf(t *testing.T, l *Log, i int64) []byte {
	t.Helper()
	leaf, err := l.Leaf(context.Background(), i)
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

// countingStore counts the stored hashes and leaves a Log reads.
type countingStore struct {
	*MemStore
	mu            sync.Mutex
	calls, hashes int
}

func (s *countingStore) ReadHashes(ctx context.Context, indexes []int64) ([]Hash, error) {
	s.mu.Lock()
	s.calls++
	s.hashes += len(indexes)
	s.mu.Unlock()
	return s.MemStore.ReadHashes(ctx, indexes)
}

func (s *countingStore) reset() (calls, hashes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	calls, hashes = s.calls, s.hashes
	s.calls, s.hashes = 0, 0
	return calls, hashes
}

// TestProofsReadLogarithmicallyManyHashes pins the reason for the stored-
// hash layout: roots and proofs cost one read of O(log n) hashes.
func TestProofsReadLogarithmicallyManyHashes(t *testing.T) {
	f := newFixture(t)
	cs := &countingStore{MemStore: f.store}
	l, err := New(cs, testOrigin, f.signer, f.clock)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rng := mrand.New(mrand.NewPCG(15, 16))
	const n = 1000
	for k := range n {
		if _, err := l.Append(ctx, randomEntry(rng)); err != nil {
			t.Fatal(err)
		}
		if calls, hashes := cs.reset(); calls > 1 || hashes > bits.Len(uint(k)) {
			t.Fatalf("append %d read %d hashes in %d calls", k, hashes, calls)
		}
	}
	logN := bits.Len(n)
	check := func(what string, limit int) {
		t.Helper()
		if calls, hashes := cs.reset(); calls != 1 || hashes > limit {
			t.Errorf("%s read %d hashes in %d calls, want one call of at most %d", what, hashes, calls, limit)
		}
	}
	if _, err := l.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	check("checkpoint", logN)
	for _, i := range []int64{0, 1, 500, 511, 512, 998, 999} {
		if _, err := l.InclusionProof(ctx, i, n); err != nil {
			t.Fatal(err)
		}
		// The path has ≤ log n siblings, and a sibling covering an incomplete
		// subtree is rebuilt from its ≤ log n complete parts.
		check(fmt.Sprintf("inclusion proof of %d", i), 2*logN)
	}
	for _, old := range []int64{1, 3, 500, 511, 512, 999} {
		if _, err := l.ConsistencyProof(ctx, old, n); err != nil {
			t.Fatal(err)
		}
		check(fmt.Sprintf("consistency proof %d → %d", old, n), 2*logN)
	}
}
