package trust

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// ErrNotFound is wrapped by MetaStore.Get and TargetStore.Open for a missing file.
var ErrNotFound = errors.New("trust: not found")

// MetaStore keeps a repository's metadata files under the names clients
// fetch them by: "N.root.json", "N.targets.json", "N.snapshot.json",
// "timestamp.json", and "root.json" for the newest root. Two more names hold
// versions still collecting signatures, "staged.root.json" and
// "staged.targets.json"; Handler never serves them.
type MetaStore interface {
	Put(ctx context.Context, name string, data []byte) error
	// Get returns an error wrapping ErrNotFound when name is absent.
	Get(ctx context.Context, name string) ([]byte, error)
}

// Store names that are not versioned.
const (
	nameRoot          = "root.json"
	nameTimestamp     = "timestamp.json"
	nameStagedRoot    = "staged.root.json"
	nameStagedTargets = "staged.targets.json"
)

// MemStore is a MetaStore in memory, for tests and tools. The zero value is ready.
type MemStore struct {
	mu    sync.RWMutex
	files map[string][]byte
}

// Put implements MetaStore.
func (m *MemStore) Put(_ context.Context, name string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.files == nil {
		m.files = map[string][]byte{}
	}
	m.files[name] = bytes.Clone(data)
	return nil
}

// Get implements MetaStore.
func (m *MemStore) Get(_ context.Context, name string) ([]byte, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	data, ok := m.files[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	return bytes.Clone(data), nil
}

// load reads and parses one metadata file.
func load[T metadata.Roles](ctx context.Context, store MetaStore, name string) (*metadata.Metadata[T], error) {
	data, err := store.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	md, err := new(metadata.Metadata[T]).FromBytes(data)
	if err != nil {
		return nil, fmt.Errorf("trust: parse %s: %w", name, err)
	}
	return md, nil
}

// file is one metadata file about to be written.
type file struct {
	name string
	data []byte
}

// encode turns md into the bytes served under name.
func encode[T metadata.Roles](name string, md *metadata.Metadata[T]) (file, error) {
	data, err := md.ToBytes(false)
	if err != nil {
		return file{}, fmt.Errorf("trust: encode %s: %w", name, err)
	}
	return file{name, data}, nil
}

// write puts files in order; callers list the file that makes a change
// visible to clients (timestamp.json, root.json) last.
func write(ctx context.Context, store MetaStore, files ...file) error {
	for _, f := range files {
		if err := store.Put(ctx, f.name, f.data); err != nil {
			return fmt.Errorf("trust: write %s: %w", f.name, err)
		}
	}
	return nil
}
