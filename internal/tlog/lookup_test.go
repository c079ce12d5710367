package tlog

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"
)

func TestEntryKey(t *testing.T) {
	rel := goldenRelease()
	other := rel
	other.Version, other.Artifacts, other.LoggedAt = "9.9", []Artifact{{Name: "x", SHA256: shaB}}, t0
	if rel.Key() != other.Key() || rel.Key() != ReleaseKey("gateway", 42) {
		t.Errorf("a release's key depends on more than product and counter: %s, %s", rel.Key(), other.Key())
	}
	meta := Entry{Kind: KindMetadata, Org: "acme", Role: "targets", MetadataVersion: 42, SHA256: shaA}
	if meta.Key() != MetadataKey("targets", 42) {
		t.Errorf("metadata key %s", meta.Key())
	}
	distinct := []string{ReleaseKey("gateway", 42), ReleaseKey("gateway", 4), ReleaseKey("gateway4", 2),
		MetadataKey("gateway", 42), ReleaseKey(`a","b`, 1), ReleaseKey("a", 1)}
	for i := range distinct {
		for j := range i {
			if distinct[i] == distinct[j] {
				t.Errorf("keys %d and %d collide: %s", i, j, distinct[i])
			}
		}
	}
}

func TestSameExceptTime(t *testing.T) {
	a := goldenRelease()
	b := goldenRelease()
	b.LoggedAt = b.LoggedAt.Add(time.Hour)
	b.Artifacts[0], b.Artifacts[1] = b.Artifacts[1], b.Artifacts[0]
	if !SameExceptTime(a, b) {
		t.Error("entries differing in time and artifact order are not the same")
	}
	for _, change := range []func(*Entry){
		func(e *Entry) { e.Org = "other" },
		func(e *Entry) { e.Version = "2.1.1" },
		func(e *Entry) { e.ReleaseCounter++ },
		func(e *Entry) { e.Artifacts = e.Artifacts[:1] },
		func(e *Entry) { e.Artifacts = []Artifact{e.Artifacts[0], {Name: e.Artifacts[1].Name, SHA256: shaA}} },
	} {
		c := goldenRelease()
		c.Artifacts = slices.Clone(c.Artifacts)
		change(&c)
		if SameExceptTime(a, c) {
			t.Errorf("%+v counts as the same as %+v", c, a)
		}
	}
}

func TestFindAndLookup(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	entries := []Entry{
		{Kind: KindRelease, Org: "acme", Product: "gw", Version: "1.0", ReleaseCounter: 1, Artifacts: []Artifact{{Name: "a", SHA256: shaA}}},
		{Kind: KindMetadata, Org: "acme", Role: "timestamp", MetadataVersion: 1, SHA256: shaA},
		{Kind: KindMetadata, Org: "acme", Role: "timestamp", MetadataVersion: 1, SHA256: shaB},
		{Kind: KindRelease, Org: "acme", Product: "gw", Version: "1.1", ReleaseCounter: 2, Artifacts: []Artifact{{Name: "a", SHA256: shaB}}},
	}
	for _, e := range entries {
		if _, err := f.log.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	h := Handler(f.log)
	cases := []struct {
		query string
		want  []int64
	}{
		{"product=gw&release_counter=1", []int64{0}},
		{"product=gw&release_counter=2", []int64{3}},
		{"product=gw&release_counter=3", []int64{}},
		{"product=other&release_counter=1", []int64{}},
		{"role=timestamp&metadata_version=1", []int64{1, 2}},
		{"role=root&metadata_version=1", []int64{}},
	}
	for _, c := range cases {
		res := get(t, h, "GET", "/lookup?"+c.query)
		b := body(t, res)
		var got LookupResponse
		if res.StatusCode != 200 || json.Unmarshal(b, &got) != nil || res.Header.Get("Cache-Control") != "no-cache" {
			t.Fatalf("lookup %s: %d %v %s", c.query, res.StatusCode, res.Header, b)
		}
		if !slices.Equal(got.Indexes, c.want) || got.Indexes == nil {
			t.Errorf("lookup %s: %s, want %v", c.query, b, c.want)
		}
	}
	for _, q := range []string{"", "product=gw", "product=gw&release_counter=01", "role=root&metadata_version=-1",
		"product=gw&role=root&release_counter=1&metadata_version=1"} {
		if res := get(t, h, "GET", "/lookup?"+q); res.StatusCode != 400 {
			t.Errorf("lookup %q: %d, want 400", q, res.StatusCode)
		}
	}
	// A store without an index cannot look up, and says so without details.
	l, err := New(struct{ Store }{f.store}, testOrigin, f.signer, f.clock)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Find(ctx, ReleaseKey("gw", 1)); err == nil {
		t.Error("Find on a store without an index succeeded")
	}
	if res := get(t, Handler(l), "GET", "/lookup?product=gw&release_counter=1"); res.StatusCode != 500 {
		t.Errorf("lookup without an index: %d, want 500", res.StatusCode)
	}
}
