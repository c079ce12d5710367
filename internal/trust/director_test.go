package trust

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/steward-iot/steward/internal/clock"
)

// memDirector is a DirectorStore in memory.
type memDirector struct {
	mu      sync.Mutex
	keys    map[string][]StoredKey
	devices map[string]DeviceMeta
}

func (m *memDirector) DirectorKeys(_ context.Context, org string) ([]StoredKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.keys[org], nil
}

func (m *memDirector) SaveDirectorKeys(_ context.Context, org string, keys []StoredKey) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.keys == nil {
		m.keys = map[string][]StoredKey{}
	}
	if len(m.keys[org]) > 0 {
		return errors.New("already has keys")
	}
	m.keys[org] = keys
	return nil
}

func (m *memDirector) DeviceMeta(_ context.Context, org, dev string) (DeviceMeta, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.devices[org+"/"+dev], nil
}

func (m *memDirector) SaveDeviceMeta(_ context.Context, org, dev string, prev, next DeviceMeta) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.devices == nil {
		m.devices = map[string]DeviceMeta{}
	}
	if !bytes.Equal(m.devices[org+"/"+dev].Timestamp, prev.Timestamp) {
		return ErrDirectorConflict
	}
	m.devices[org+"/"+dev] = next
	return nil
}

func newTestDirector(t *testing.T, c clock.Clock) *Director {
	roots := map[string]*MemStore{}
	var mu sync.Mutex
	return NewDirector(func(org string) MetaStore {
		mu.Lock()
		defer mu.Unlock()
		if roots[org] == nil {
			roots[org] = &MemStore{}
		}
		return roots[org]
	}, &memDirector{}, c, time.Hour, nil)
}

func image(path, content string, counter int) Target {
	return Target{Path: path, Length: int64(len(content)), Hashes: map[string][]byte{"sha256": bytes.Repeat([]byte{byte(counter)}, 32)},
		Custom: []byte(`{"hardware_id":"hw","release_counter":` + string(rune('0'+counter)) + `}`)}
}

func timestampOf(t *testing.T, data []byte) *metadata.Metadata[metadata.TimestampType] {
	t.Helper()
	md, err := new(metadata.Metadata[metadata.TimestampType]).FromBytes(data)
	if err != nil {
		t.Fatal(err)
	}
	return md
}

func TestDirectorSignsOnlyWhenNeeded(t *testing.T) {
	ctx := context.Background()
	c := clock.NewFake(time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC))
	d := newTestDirector(t, c)
	want := []Target{image("gw/1.0/fw.img", "one", 1)}
	ts1, err := d.Serve(ctx, "org", "dev-1", "timestamp.json", want)
	if err != nil {
		t.Fatal(err)
	}
	ts2, err := d.Serve(ctx, "org", "dev-1", "timestamp.json", want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ts1, ts2) {
		t.Fatalf("the same assignment was signed again:\n%s\n%s", ts1, ts2)
	}
	// Two thirds of its life later it is renewed with a higher version.
	c.Advance(41 * time.Minute)
	ts3, err := d.Serve(ctx, "org", "dev-1", "timestamp.json", want)
	if err != nil {
		t.Fatal(err)
	}
	if v1, v3 := timestampOf(t, ts1).Signed.Version, timestampOf(t, ts3).Signed.Version; v3 <= v1 {
		t.Fatalf("renewal kept version %d → %d", v1, v3)
	}
	// A changed assignment is a new version at once.
	ts4, err := d.Serve(ctx, "org", "dev-1", "timestamp.json", []Target{image("gw/1.1/fw.img", "two", 2)})
	if err != nil {
		t.Fatal(err)
	}
	if timestampOf(t, ts4).Signed.Version <= timestampOf(t, ts3).Signed.Version {
		t.Fatal("a new assignment did not raise the version")
	}
	// The files the timestamp names are served; older and other ones are not.
	tsmd := timestampOf(t, ts4)
	sv := tsmd.Signed.Meta["snapshot.json"].Version
	if _, err := d.Serve(ctx, "org", "dev-1", versioned(RoleSnapshot, sv), nil); err != nil {
		t.Fatalf("snapshot %d: %v", sv, err)
	}
	if _, err := d.Serve(ctx, "org", "dev-1", versioned(RoleSnapshot, sv-1), nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("old snapshot: %v", err)
	}
	for _, name := range []string{"targets.json", "0.targets.json", "x.root.json", "1.timestamp.json", "../1.root.json", "1.root.json.bak"} {
		if _, err := d.Serve(ctx, "org", "dev-1", name, nil); !errors.Is(err, ErrNotFound) {
			t.Errorf("%q: %v, want not found", name, err)
		}
	}
	if _, err := d.Serve(ctx, "org", "dev-1", "1.root.json", nil); err != nil {
		t.Fatalf("root: %v", err)
	}
}

// TestDirectorKeysWithoutRoot: keys stored but root version 1 never
// written (a crash, or another replica mid-way) must not leave a director
// without a root; the next request writes it with the stored keys.
func TestDirectorKeysWithoutRoot(t *testing.T) {
	ctx := context.Background()
	c := clock.NewFake(time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC))
	store := &memDirector{}
	_, keys, err := newOnlineKeys()
	if err != nil {
		t.Fatal(err)
	}
	if err := store.SaveDirectorKeys(ctx, "org", keys); err != nil {
		t.Fatal(err)
	}
	roots := &MemStore{}
	d := NewDirector(func(string) MetaStore { return roots }, store, c, time.Hour, nil)
	if _, err := d.Serve(ctx, "org", "dev-1", "timestamp.json", []Target{image("gw/1.0/fw.img", "one", 1)}); err != nil {
		t.Fatal(err)
	}
	data, err := d.Root(ctx, "org", 1)
	if err != nil {
		t.Fatal(err)
	}
	root, err := new(metadata.Metadata[metadata.RootType]).FromBytes(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if !slices.Contains(root.Signed.Roles[string(k.Role)].KeyIDs, k.KeyID) {
			t.Fatalf("root does not use the stored %s key", k.Role)
		}
	}
}
