// Package tlog is Steward's transparency log: an append-only RFC 6962 Merkle
// tree of every release and every signed metadata version, with signed
// checkpoints and inclusion and consistency proofs. A device or auditor that
// checks each release it sees against a checkpoint, and checks that the
// checkpoints it sees are consistent with one another, detects a release or
// metadata version that was shown to some devices but hidden from others.
//
// # Leaves
//
// Each leaf is one Entry in canonical JSON (see Entry.Leaf): a release
// (organization, product, version, release counter, artifact sha256s) or a
// metadata version (organization, role, version, sha256), stamped with the
// time it was logged. ParseEntry accepts only the canonical bytes, so one
// entry has exactly one leaf hash. Leaf and node hashes are RFC 6962:
// SHA-256(0x00 || leaf) and SHA-256(0x01 || left || right).
//
// # Checkpoints
//
// A checkpoint is a C2SP tlog-checkpoint (https://c2sp.org/tlog-checkpoint):
// a signed note (golang.org/x/mod/sumdb/note, Ed25519) whose text is
//
//	<origin>
//	<tree size, decimal, no leading zeros>
//	<root hash, standard base64>
//
// followed by a blank line and signature lines. The log writes no extension
// lines; VerifyCheckpoint accepts and ignores non-empty ones. The signing
// key's name must equal the origin.
//
// # Storage
//
// A Store keeps the leaves and the tree's "stored hashes" in the dense order
// of golang.org/x/mod/sumdb/tlog (StoredHashIndex): appending record n
// writes at most 1+log₂ n hashes, and a root, inclusion proof or consistency
// proof reads at most O(log n) of them in one ReadHashes call.
//
// # HTTP
//
// Handler serves the log read-only (mount it with http.StripPrefix):
//
//	GET /checkpoint                    text/plain: the latest signed checkpoint
//	GET /entries/{index}               application/json: the leaf bytes, exactly as hashed
//	GET /proof/inclusion?index=&size=  application/json: {"index":I,"size":N,"hashes":["<base64>",…]}
//	GET /proof/consistency?old=&new=   application/json: {"old":M,"new":N,"hashes":["<base64>",…]}
//	GET /lookup?product=&release_counter=  application/json: {"indexes":[I,…]}, the entries of that release
//	GET /lookup?role=&metadata_version=    application/json: {"indexes":[I,…]}, the entries of that metadata version
//
// Numbers are decimal without sign or leading zeros. Proof hashes are
// standard base64, in RFC 6962 (RFC 9162 §2.1.3 and §2.1.4) order, and
// verify with VerifyInclusion and VerifyConsistency. Bad parameters answer
// 400 and an index or size beyond the log 404, each with a plain-text reason.
// Entries and proofs never change once they exist and are cacheable forever;
// the checkpoint and lookups are not. A lookup only says where to look: the
// client still checks the leaf it finds there against what it expected, and
// its inclusion in a checkpoint.
package tlog

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/mod/sumdb/note"
	sumtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/problem"
)

// Hash is a SHA-256 tree hash. It marshals to JSON as a base64 string.
type Hash = sumtlog.Hash

// HashSize is the size of a Hash in bytes.
const HashSize = sumtlog.HashSize

// maxAppendAttempts bounds retries when another process appends between
// reading the log size and writing; each conflict means that process made
// progress, so a few retries suffice unless the store is broken.
const maxAppendAttempts = 100

// Log appends entries to a Store and signs checkpoints of it.
type Log struct {
	store  Store
	origin string
	signer note.Signer
	clock  clock.Clock

	// appendMu serializes this process's appends; Store.Append's size check
	// catches writers in other processes.
	appendMu sync.Mutex

	// The newest checkpoint, so that polling clients do not cost a tree
	// hash and a signature each while the log is idle.
	cpMu   sync.Mutex
	cpSize int64
	cpNote []byte
}

// New returns a log over store whose checkpoints name origin and are signed
// by signer. The signer's key name must be origin, as C2SP tlog-checkpoint
// recommends, so that verifiers can find the key by the log's name.
func New(store Store, origin string, signer note.Signer, clk clock.Clock) (*Log, error) {
	switch {
	case store == nil || signer == nil || clk == nil:
		return nil, errors.New("tlog: New needs a store, a signer and a clock")
	case origin == "":
		return nil, errors.New("tlog: empty origin")
	case signer.Name() != origin:
		return nil, fmt.Errorf("tlog: signer key is named %q, want the origin %q", signer.Name(), origin)
	}
	return &Log{store: store, origin: origin, signer: signer, clock: clk}, nil
}

// Origin returns the log's origin line.
func (l *Log) Origin() string { return l.origin }

// Append stamps e with the current time, stores it as the next leaf and
// returns its index. Invalid entries return a problem.KindInvalid error.
func (l *Log) Append(ctx context.Context, e Entry) (int64, error) {
	e.LoggedAt = l.clock.Now()
	leaf, err := e.Leaf()
	if err != nil {
		return 0, err
	}
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	for attempt := 1; ; attempt++ {
		n, err := l.size(ctx)
		if err != nil {
			return 0, err
		}
		hashes, err := sumtlog.StoredHashes(n, leaf, l.hashReader(ctx))
		if err != nil {
			return 0, fmt.Errorf("tlog: hashing entry %d: %w", n, err)
		}
		err = l.store.Append(ctx, n, leaf, hashes)
		if errors.Is(err, ErrConflict) && attempt < maxAppendAttempts {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("tlog: appending entry %d: %w", n, err)
		}
		return n, nil
	}
}

// Leaf returns the leaf bytes of entry index, exactly as hashed.
func (l *Log) Leaf(ctx context.Context, index int64) ([]byte, error) {
	if index < 0 {
		return nil, problem.Invalid("entry index %d is negative", index)
	}
	n, err := l.size(ctx)
	if err != nil {
		return nil, err
	}
	if index >= n {
		return nil, problem.NotFound("no entry %d: the log has %d entries", index, n)
	}
	leaf, err := l.store.Leaf(ctx, index)
	if err != nil {
		return nil, fmt.Errorf("tlog: reading entry %d: %w", index, err)
	}
	return leaf, nil
}

// Find returns the indexes of the entries with the given Entry.Key, in
// increasing order (none: an empty slice). The store must be a Finder.
func (l *Log) Find(ctx context.Context, key string) ([]int64, error) {
	f, ok := l.store.(Finder)
	if !ok {
		return nil, errors.New("tlog: this log's store has no index by entry key")
	}
	ix, err := f.Find(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("tlog: finding entries: %w", err)
	}
	return ix, nil
}

// Checkpoint returns a signed C2SP checkpoint for the log's current size.
func (l *Log) Checkpoint(ctx context.Context) ([]byte, error) {
	size, err := l.size(ctx)
	if err != nil {
		return nil, err
	}
	l.cpMu.Lock()
	defer l.cpMu.Unlock()
	if l.cpNote != nil && l.cpSize == size {
		return append([]byte(nil), l.cpNote...), nil
	}
	root, err := sumtlog.TreeHash(size, l.hashReader(ctx))
	if err != nil {
		return nil, fmt.Errorf("tlog: hashing tree of size %d: %w", size, err)
	}
	signed, err := note.Sign(&note.Note{Text: formatCheckpoint(l.origin, size, root)}, l.signer)
	if err != nil {
		return nil, fmt.Errorf("tlog: signing checkpoint: %w", err)
	}
	// Appends may have moved on meanwhile; never replace a newer checkpoint.
	if size >= l.cpSize {
		l.cpSize, l.cpNote = size, signed
	}
	return append([]byte(nil), signed...), nil
}

// InclusionProof returns the proof that entry index is in the tree of size
// treeSize, which must not exceed the log's size.
func (l *Log) InclusionProof(ctx context.Context, index, treeSize int64) ([]Hash, error) {
	if index < 0 || index >= treeSize {
		return nil, problem.Invalid("entry %d is not in a tree of size %d", index, treeSize)
	}
	if err := l.checkTreeSize(ctx, treeSize); err != nil {
		return nil, err
	}
	p, err := sumtlog.ProveRecord(treeSize, index, l.hashReader(ctx))
	if err != nil {
		return nil, fmt.Errorf("tlog: proving entry %d in tree of size %d: %w", index, treeSize, err)
	}
	return p, nil
}

// ConsistencyProof returns the proof that the tree of size oldSize is a
// prefix of the tree of size newSize. The proof is empty when oldSize is 0
// or equal to newSize: there is nothing to prove.
func (l *Log) ConsistencyProof(ctx context.Context, oldSize, newSize int64) ([]Hash, error) {
	if oldSize < 0 || oldSize > newSize {
		return nil, problem.Invalid("no consistency proof from tree size %d to %d", oldSize, newSize)
	}
	if err := l.checkTreeSize(ctx, newSize); err != nil {
		return nil, err
	}
	if oldSize == 0 || oldSize == newSize {
		return []Hash{}, nil
	}
	p, err := sumtlog.ProveTree(newSize, oldSize, l.hashReader(ctx))
	if err != nil {
		return nil, fmt.Errorf("tlog: proving tree %d consistent with %d: %w", oldSize, newSize, err)
	}
	return p, nil
}

// checkTreeSize fails with problem.KindNotFound if the log is smaller than size.
func (l *Log) checkTreeSize(ctx context.Context, size int64) error {
	n, err := l.size(ctx)
	if err != nil {
		return err
	}
	if size > n {
		return problem.NotFound("the log has %d entries, fewer than %d", n, size)
	}
	return nil
}

func (l *Log) size(ctx context.Context) (int64, error) {
	n, err := l.store.Size(ctx)
	if err != nil {
		return 0, fmt.Errorf("tlog: reading log size: %w", err)
	}
	return n, nil
}

func (l *Log) hashReader(ctx context.Context) sumtlog.HashReader {
	return sumtlog.HashReaderFunc(func(indexes []int64) ([]Hash, error) {
		return l.store.ReadHashes(ctx, indexes)
	})
}
