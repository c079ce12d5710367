package tlog

import (
	"context"
	"errors"
	"fmt"
	"sync"

	sumtlog "golang.org/x/mod/sumdb/tlog"
)

// ErrConflict is returned (wrapped) by Store.Append when the log no longer
// has the size the caller read: another writer appended first.
var ErrConflict = errors.New("tlog: the log grew during the append")

// Store keeps a log's leaves and its stored hashes: the hash of every
// complete subtree, at the positions sumtlog.StoredHashIndex gives. A
// database implementation needs two append-only tables (leaves by index,
// hashes by stored-hash index) and writes both in one transaction.
type Store interface {
	// Append stores leaf as entry n, and hashes (those sumtlog.StoredHashes
	// returns for it) from stored-hash index sumtlog.StoredHashIndex(0, n)
	// on, all or nothing. If the log does not hold exactly n entries it
	// stores nothing and returns an error wrapping ErrConflict; that check
	// is what keeps concurrent writers from forking the tree.
	Append(ctx context.Context, n int64, leaf []byte, hashes []Hash) error
	// Size returns the number of entries.
	Size(ctx context.Context) (int64, error)
	// Leaf returns entry i, which the caller has checked exists.
	Leaf(ctx context.Context, i int64) ([]byte, error)
	// ReadHashes returns the stored hashes at the given indexes, in order.
	// Callers only ask for hashes of entries already appended.
	ReadHashes(ctx context.Context, indexes []int64) ([]Hash, error)
}

// Finder is implemented by stores that index entries by Entry.Key, which
// Log.Find and the handler's /lookup need. A database implementation
// derives the key from the leaf (ParseEntry) in Append's transaction, so an
// entry is never findable before it exists or missing from the index after.
type Finder interface {
	// Find returns the indexes of the entries with key, in increasing order.
	Find(ctx context.Context, key string) ([]int64, error)
}

// MemStore is a Store in memory, for tests and tools.
type MemStore struct {
	mu     sync.RWMutex
	leaves [][]byte
	hashes []Hash
}

// NewMemStore returns an empty in-memory store.
func NewMemStore() *MemStore { return &MemStore{} }

// Append implements Store.
func (m *MemStore) Append(_ context.Context, n int64, leaf []byte, hashes []Hash) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if size := int64(len(m.leaves)); n != size {
		return fmt.Errorf("%w: entry %d offered to a log of %d entries", ErrConflict, n, size)
	}
	if want := sumtlog.StoredHashCount(n+1) - sumtlog.StoredHashCount(n); int64(len(hashes)) != want {
		return fmt.Errorf("tlog: entry %d comes with %d stored hashes, want %d", n, len(hashes), want)
	}
	m.leaves = append(m.leaves, append([]byte(nil), leaf...))
	m.hashes = append(m.hashes, hashes...)
	return nil
}

// Size implements Store.
func (m *MemStore) Size(context.Context) (int64, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return int64(len(m.leaves)), nil
}

// Leaf implements Store.
func (m *MemStore) Leaf(_ context.Context, i int64) ([]byte, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if i < 0 || i >= int64(len(m.leaves)) {
		return nil, fmt.Errorf("tlog: no entry %d in a log of %d", i, len(m.leaves))
	}
	return append([]byte(nil), m.leaves[i]...), nil
}

// Find implements Finder by reading every leaf: fine for tests and tools.
func (m *MemStore) Find(_ context.Context, key string) ([]int64, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := []int64{}
	for i, leaf := range m.leaves {
		e, err := ParseEntry(leaf)
		if err != nil {
			return nil, fmt.Errorf("tlog: entry %d: %w", i, err)
		}
		if e.Key() == key {
			out = append(out, int64(i))
		}
	}
	return out, nil
}

// ReadHashes implements Store.
func (m *MemStore) ReadHashes(_ context.Context, indexes []int64) ([]Hash, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(m.hashes)) {
			return nil, fmt.Errorf("tlog: no stored hash %d (have %d)", x, len(m.hashes))
		}
		out[i] = m.hashes[x]
	}
	return out, nil
}
