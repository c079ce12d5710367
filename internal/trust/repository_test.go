package trust_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/steward-iot/steward/internal/problem"
	"github.com/steward-iot/steward/internal/trust"
)

// Each document names the previous one by version, length and hash, and
// expiries are written as YYYY-MM-DDTHH:MM:SSZ.
func TestMetadataChain(t *testing.T) {
	start := time.Date(2030, 1, 2, 3, 4, 5, 678e6, time.FixedZone("CET", 3600))
	f := newFixture(t, start)
	f.add("fw/a.bin", []byte("a"), `{"hardware_id":"gw-1","release_counter":1}`)

	for _, name := range []string{"1.root.json", "root.json", "1.targets.json", "2.targets.json", "1.snapshot.json", "2.snapshot.json", "timestamp.json"} {
		f.get(name)
	}
	ts, err := metadata.Timestamp().FromBytes(f.get("timestamp.json"))
	if err != nil {
		t.Fatal(err)
	}
	snapBytes := f.get("2.snapshot.json")
	wantMeta(t, "timestamp", ts.Signed.Meta["snapshot.json"], 2, snapBytes)
	snap, err := metadata.Snapshot().FromBytes(snapBytes)
	if err != nil {
		t.Fatal(err)
	}
	targetsBytes := f.get("2.targets.json")
	wantMeta(t, "snapshot", snap.Signed.Meta["targets.json"], 2, targetsBytes)
	if ts.Signed.Version != 2 || snap.Signed.Version != 2 {
		t.Fatalf("timestamp version %d, snapshot version %d; want 2 and 2", ts.Signed.Version, snap.Signed.Version)
	}

	root, err := metadata.Root().FromBytes(f.get("1.root.json"))
	if err != nil {
		t.Fatal(err)
	}
	targets, err := metadata.Targets().FromBytes(targetsBytes)
	if err != nil {
		t.Fatal(err)
	}
	for role, md := range map[string]any{"root": root, "targets": targets, "snapshot": snap, "timestamp": ts} {
		if err := root.VerifyDelegate(role, md); err != nil {
			t.Errorf("%s: %v", role, err)
		}
	}
	if !root.Signed.ConsistentSnapshot {
		t.Error("consistent_snapshot is off")
	}

	// Lifetimes from the documented defaults, in whole UTC seconds.
	wantExpires := map[string]string{
		"1.root.json":     "2031-01-02T02:04:05Z",
		"2.targets.json":  "2030-04-02T02:04:05Z",
		"2.snapshot.json": "2030-01-09T02:04:05Z",
		"timestamp.json":  "2030-01-03T02:04:05Z",
	}
	for name, want := range wantExpires {
		var doc struct {
			Signed struct {
				Expires string `json:"expires"`
			} `json:"signed"`
		}
		if err := json.Unmarshal(f.get(name), &doc); err != nil {
			t.Fatal(err)
		}
		if doc.Signed.Expires != want {
			t.Errorf("%s expires %q, want %q", name, doc.Signed.Expires, want)
		}
	}
}

func wantMeta(t *testing.T, in string, m *metadata.MetaFiles, version int64, data []byte) {
	t.Helper()
	sum := sha256.Sum256(data)
	if m == nil || m.Version != version || m.Length != int64(len(data)) || !bytes.Equal(m.Hashes["sha256"], sum[:]) {
		t.Fatalf("%s meta = %+v, want version %d, length %d and the sha256 of the served bytes", in, m, version, len(data))
	}
}

func TestInitRefusals(t *testing.T) {
	ctx := t.Context()
	k := func(role trust.Role) *trust.Signer { return newKey(t, role) }
	_, shared := ed25519Key(t, trust.RoleTargets)
	sharedTargets, _ := trust.NewSigner(trust.RoleTargets, shared)
	sharedSnapshot, _ := trust.NewSigner(trust.RoleSnapshot, shared)
	_, tsPriv := ed25519Key(t, trust.RoleTimestamp)

	cases := []struct {
		name       string
		keys       []*trust.Signer
		thresholds map[trust.Role]int
		detail     string
	}{
		{"role without keys", []*trust.Signer{k("root"), k("targets"), k("snapshot")}, nil, "timestamp has no keys"},
		{"threshold above keys", []*trust.Signer{k("root"), k("targets"), k("snapshot"), k("timestamp")}, map[trust.Role]int{"root": 2}, "root threshold 2"},
		{"unknown role", []*trust.Signer{k("root"), k("targets"), k("snapshot"), k("timestamp")}, map[trust.Role]int{"mirror": 1}, "unknown role"},
		{"key in two roles", []*trust.Signer{k("root"), sharedTargets, sharedSnapshot, k("timestamp")}, nil, "keys of its own"},
		{"offline timestamp key", []*trust.Signer{k("root"), k("targets"), k("snapshot"), offline(t, "timestamp", tsPriv)}, nil, "timestamp is signed unattended"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			repo, err := trust.Open(ctx, &trust.MemStore{}, trust.Config{})
			if err != nil {
				t.Fatal(err)
			}
			err = repo.Init(ctx, c.keys, c.thresholds)
			wantKind(t, err, problem.KindInvalid)
			if !strings.Contains(err.Error(), c.detail) {
				t.Fatalf("error %q does not say %q", err, c.detail)
			}
		})
	}

	f := newFixture(t, time.Now())
	err := f.repo.Init(f.ctx, []*trust.Signer{k("root"), k("targets"), k("snapshot"), k("timestamp")}, nil)
	wantKind(t, err, problem.KindConflict)

	if _, err := trust.NewSigner("mirror", shared); err == nil {
		t.Fatal("NewSigner accepted an unknown role")
	}
	if _, err := trust.Open(ctx, &trust.MemStore{}, trust.Config{Expiries: trust.Expiries{Timestamp: -time.Hour}}); err == nil {
		t.Fatal("Open accepted a negative expiry")
	}
}

func TestAddTargets(t *testing.T) {
	f := newFixture(t, time.Now())
	good := target("fw/a.bin", []byte("a"), `{"release_counter":1}`)
	with := func(change func(*trust.Target)) trust.Target {
		tg := target("fw/a.bin", []byte("a"), `{"release_counter":1}`)
		change(&tg)
		return tg
	}
	invalid := map[string][]trust.Target{
		"empty path":       {with(func(t *trust.Target) { t.Path = "" })},
		"dot-dot":          {with(func(t *trust.Target) { t.Path = "fw/../a.bin" })},
		"leading slash":    {with(func(t *trust.Target) { t.Path = "/a.bin" })},
		"space":            {with(func(t *trust.Target) { t.Path = "a b.bin" })},
		"query":            {with(func(t *trust.Target) { t.Path = "a.bin?x" })},
		"negative length":  {with(func(t *trust.Target) { t.Length = -1 })},
		"no sha256":        {with(func(t *trust.Target) { delete(t.Hashes, "sha256") })},
		"short sha512":     {with(func(t *trust.Target) { t.Hashes["sha512"] = t.Hashes["sha512"][:32] })},
		"md5":              {with(func(t *trust.Target) { t.Hashes["md5"] = make([]byte, 16) })},
		"custom array":     {with(func(t *trust.Target) { t.Custom = []byte(`[1]`) })},
		"custom null":      {with(func(t *trust.Target) { t.Custom = []byte(`null`) })},
		"custom float":     {with(func(t *trust.Target) { t.Custom = []byte(`{"score":1.5}`) })},
		"custom malformed": {with(func(t *trust.Target) { t.Custom = []byte(`{"a":`) })},
		"listed twice":     {good, good},
	}
	for name, ts := range invalid {
		t.Run(name, func(t *testing.T) {
			_, err := f.repo.AddTargets(f.ctx, ts)
			wantKind(t, err, problem.KindInvalid)
		})
	}
	if _, err := f.store.Get(f.ctx, "2.targets.json"); !errors.Is(err, trust.ErrNotFound) {
		t.Fatalf("refused targets were published: %v", err)
	}

	out, err := f.repo.AddTargets(f.ctx, []trust.Target{good})
	if err != nil || out != (trust.Outcome{Role: trust.RoleTargets, Version: 2, Published: true}) {
		t.Fatalf("AddTargets = %+v, %v", out, err)
	}
	// The same target again is fine (and renews the expiry); other content is not.
	if out, err = f.repo.AddTargets(f.ctx, []trust.Target{good}); err != nil || out.Version != 3 {
		t.Fatalf("re-adding = %+v, %v", out, err)
	}
	_, err = f.repo.AddTargets(f.ctx, []trust.Target{with(func(t *trust.Target) { t.Custom = []byte(`{"release_counter":2}`) })})
	wantKind(t, err, problem.KindConflict)
	_, err = f.repo.AddTargets(f.ctx, []trust.Target{target("fw/a.bin", []byte("b"), `{"release_counter":1}`)})
	wantKind(t, err, problem.KindConflict)

	empty, err := trust.Open(f.ctx, &trust.MemStore{}, trust.Config{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = empty.AddTargets(f.ctx, nil)
	wantKind(t, err, problem.KindConflict)
	_, err = empty.RefreshTimestamp(f.ctx, time.Now())
	wantKind(t, err, problem.KindConflict)
}

func TestRefreshTimestampMargin(t *testing.T) {
	start := time.Now()
	f := newFixture(t, start)
	steps := []struct {
		after    time.Duration
		renewed  bool
		ts, snap int64 // versions afterwards
	}{
		{15 * time.Hour, false, 1, 1},    // 9 of 24 hours left
		{17 * time.Hour, true, 2, 1},     // 7 hours left: under a third
		{18 * time.Hour, false, 2, 1},    // renewed an hour ago
		{5 * 24 * time.Hour, true, 3, 2}, // snapshot: 2 of 7 days left
	}
	for _, s := range steps {
		renewed, err := f.repo.RefreshTimestamp(f.ctx, start.Add(s.after))
		if err != nil || renewed != s.renewed {
			t.Fatalf("at +%s: RefreshTimestamp = %v, %v; want %v", s.after, renewed, err, s.renewed)
		}
		ts, err := metadata.Timestamp().FromBytes(f.get("timestamp.json"))
		if err != nil {
			t.Fatal(err)
		}
		if v, sv := ts.Signed.Version, ts.Signed.Meta["snapshot.json"].Version; v != s.ts || sv != s.snap {
			t.Fatalf("at +%s: timestamp version %d naming snapshot %d, want %d and %d", s.after, v, sv, s.ts, s.snap)
		}
	}
}

// All state lives in the store: a reopened repository continues the
// versions and still holds the root that awaits signatures.
func TestReopen(t *testing.T) {
	f := newFixture(t, time.Now())
	f.add("a.bin", []byte("a"), "")
	_, later := ed25519Key(t, trust.RoleRoot)
	if out, err := f.repo.RotateRoot(f.ctx, []*trust.Signer{offline(t, trust.RoleRoot, later)}, 1); err != nil || out.Published {
		t.Fatalf("rotate = %+v, %v; want staged", out, err)
	}

	repo := f.open([]*trust.Signer{f.keys[trust.RoleTargets], f.keys[trust.RoleSnapshot], f.keys[trust.RoleTimestamp]})
	out, err := repo.AddTargets(f.ctx, []trust.Target{target("b.bin", []byte("b"), "")})
	if err != nil || out != (trust.Outcome{Role: trust.RoleTargets, Version: 3, Published: true}) {
		t.Fatalf("AddTargets after reopening = %+v, %v", out, err)
	}
	if v, _, err := repo.UnsignedRoot(); err != nil || v != 2 {
		t.Fatalf("UnsignedRoot after reopening = %d, %v", v, err)
	}
	if _, _, err := repo.UnsignedTargets(); problem.KindOf(err) != problem.KindNotFound {
		t.Fatalf("UnsignedTargets with nothing staged: %v", err)
	}
	if _, err := f.store.Get(f.ctx, "3.snapshot.json"); err != nil {
		t.Fatal(err)
	}

	// Without the snapshot key nothing can be published.
	repo = f.open([]*trust.Signer{f.keys[trust.RoleTargets], f.keys[trust.RoleTimestamp]})
	_, err = repo.AddTargets(f.ctx, []trust.Target{target("c.bin", []byte("c"), "")})
	if err == nil || !regexp.MustCompile(`sign snapshot: .*not enough signatures`).MatchString(err.Error()) {
		t.Fatalf("AddTargets without the snapshot key: %v", err)
	}
	if _, err := f.store.Get(f.ctx, "4.targets.json"); !errors.Is(err, trust.ErrNotFound) {
		t.Fatalf("4.targets.json written without a snapshot: %v", err)
	}
}
