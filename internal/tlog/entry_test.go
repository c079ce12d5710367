package tlog

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/steward-iot/steward/internal/problem"
)

var (
	shaA = strings.Repeat("a", 64)
	shaB = strings.Repeat("b", 64)
)

func goldenRelease() Entry {
	return Entry{Kind: KindRelease, Org: "acme", Product: "gateway", Version: "2.1.0 <rc>", ReleaseCounter: 42,
		Artifacts: []Artifact{{Name: "rootfs.img", SHA256: shaA}, {Name: "kernel.img", SHA256: shaB}},
		LoggedAt:  time.Date(2026, 3, 1, 13, 0, 0, 123456789, time.FixedZone("CET", 3600))}
}

func TestEntryLeafGolden(t *testing.T) {
	cases := []struct {
		e    Entry
		want string
	}{
		{goldenRelease(), `{"kind":"release","org":"acme","product":"gateway","version":"2.1.0 <rc>","release_counter":42,` +
			`"artifacts":[{"name":"kernel.img","sha256":"` + shaB + `"},{"name":"rootfs.img","sha256":"` + shaA + `"}],` +
			`"logged_at":"2026-03-01T12:00:00.123456Z"}`},
		{Entry{Kind: KindMetadata, Org: "acme", Role: "targets", MetadataVersion: 3, SHA256: shaA, LoggedAt: t0},
			`{"kind":"metadata","org":"acme","role":"targets","metadata_version":3,"sha256":"` + shaA + `","logged_at":"2026-03-01T12:00:00Z"}`},
	}
	for _, c := range cases {
		leaf, err := c.e.Leaf()
		if err != nil {
			t.Fatal(err)
		}
		if string(leaf) != c.want {
			t.Errorf("leaf\n%s\nwant\n%s", leaf, c.want)
		}
	}
}

func TestEntryLeafIsCanonical(t *testing.T) {
	a := goldenRelease()
	b := goldenRelease()
	b.Artifacts[0], b.Artifacts[1] = b.Artifacts[1], b.Artifacts[0]
	b.LoggedAt = time.Date(2026, 3, 1, 12, 0, 0, 123456001, time.UTC) // same instant at storage precision
	la, err := a.Leaf()
	if err != nil {
		t.Fatal(err)
	}
	lb, err := b.Leaf()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(la, lb) {
		t.Errorf("equal entries encode differently:\n%s\n%s", la, lb)
	}
	if a.Artifacts[0].Name != "rootfs.img" {
		t.Error("Leaf reordered the caller's artifacts")
	}

	parsed, err := ParseEntry(la)
	if err != nil {
		t.Fatal(err)
	}
	again, err := parsed.Leaf()
	if err != nil || !bytes.Equal(again, la) {
		t.Errorf("ParseEntry then Leaf gives %s (%v), want %s", again, err, la)
	}
	if parsed.Version != "2.1.0 <rc>" || parsed.ReleaseCounter != 42 || len(parsed.Artifacts) != 2 {
		t.Errorf("parsed %+v", parsed)
	}
}

func TestParseEntryRejectsOtherSpellings(t *testing.T) {
	leaf, err := goldenRelease().Leaf()
	if err != nil {
		t.Fatal(err)
	}
	s := string(leaf)
	variants := map[string]string{
		"trailing newline":   s + "\n",
		"leading space":      " " + s,
		"space after colon":  strings.Replace(s, `"kind":"release"`, `"kind": "release"`, 1),
		"keys reordered":     strings.Replace(s, `"kind":"release","org":"acme"`, `"org":"acme","kind":"release"`, 1),
		"duplicate key":      strings.Replace(s, `"org":"acme"`, `"org":"acme","org":"acme"`, 1),
		"unknown field":      strings.Replace(s, `"org":"acme"`, `"org":"acme","note":"x"`, 1),
		"html-escaped":       strings.Replace(s, `<rc>`, `\u003crc\u003e`, 1),
		"escaped letter":     strings.Replace(s, `"acme"`, `"\u0061cme"`, 1),
		"unsorted artifacts": strings.Replace(s, "kernel.img", "zzz.img", 1),
		"uppercase digest":   strings.Replace(s, shaA, strings.ToUpper(shaA), 1),
		"time zone offset":   strings.Replace(s, "12:00:00.123456Z", "13:00:00.123456+01:00", 1),
		"nanoseconds":        strings.Replace(s, "12:00:00.123456Z", "12:00:00.123456789Z", 1),
		"counter as float":   strings.Replace(s, `"release_counter":42`, `"release_counter":42.0`, 1),
		"explicit zero":      strings.Replace(s, `"release_counter":42,`, `"release_counter":42,"metadata_version":0,`, 1),
		"second value":       s + "{}",
		"not json":           "release acme gateway",
		"empty":              "",
	}
	for name, v := range variants {
		if _, err := ParseEntry([]byte(v)); err == nil {
			t.Errorf("%s: ParseEntry accepted %s", name, v)
		}
	}
}

func TestEntryValidation(t *testing.T) {
	release := func(edit func(*Entry)) Entry {
		e := Entry{Kind: KindRelease, Org: "acme", Product: "gw", Version: "1", ReleaseCounter: 1,
			Artifacts: []Artifact{{Name: "img", SHA256: shaA}}, LoggedAt: t0}
		edit(&e)
		return e
	}
	metadata := func(edit func(*Entry)) Entry {
		e := Entry{Kind: KindMetadata, Org: "acme", Role: "root", MetadataVersion: 1, SHA256: shaA, LoggedAt: t0}
		edit(&e)
		return e
	}
	cases := map[string]Entry{
		"no kind":                 release(func(e *Entry) { e.Kind = "" }),
		"unknown kind":            release(func(e *Entry) { e.Kind = "delta" }),
		"no org":                  release(func(e *Entry) { e.Org = "" }),
		"no time":                 release(func(e *Entry) { e.LoggedAt = time.Time{} }),
		"no product":              release(func(e *Entry) { e.Product = "" }),
		"no version":              release(func(e *Entry) { e.Version = "" }),
		"counter 0":               release(func(e *Entry) { e.ReleaseCounter = 0 }),
		"negative counter":        release(func(e *Entry) { e.ReleaseCounter = -3 }),
		"no artifacts":            release(func(e *Entry) { e.Artifacts = nil }),
		"unnamed artifact":        release(func(e *Entry) { e.Artifacts[0].Name = "" }),
		"artifact listed twice":   release(func(e *Entry) { e.Artifacts = append(e.Artifacts, Artifact{Name: "img", SHA256: shaB}) }),
		"short digest":            release(func(e *Entry) { e.Artifacts[0].SHA256 = shaA[:63] }),
		"uppercase digest":        release(func(e *Entry) { e.Artifacts[0].SHA256 = strings.ToUpper(shaA) }),
		"release with role":       release(func(e *Entry) { e.Role = "targets" }),
		"release with sha256":     release(func(e *Entry) { e.SHA256 = shaA }),
		"control character":       release(func(e *Entry) { e.Version = "1\n2" }),
		"invalid UTF-8":           release(func(e *Entry) { e.Product = "gw\xff" }),
		"no role":                 metadata(func(e *Entry) { e.Role = "" }),
		"metadata version 0":      metadata(func(e *Entry) { e.MetadataVersion = 0 }),
		"metadata without digest": metadata(func(e *Entry) { e.SHA256 = "" }),
		"metadata with product":   metadata(func(e *Entry) { e.Product = "gw" }),
		"metadata with artifacts": metadata(func(e *Entry) { e.Artifacts = []Artifact{{Name: "img", SHA256: shaA}} }),
	}
	for name, e := range cases {
		if _, err := e.Leaf(); !problem.Is(err, problem.KindInvalid) {
			t.Errorf("%s: Leaf() err = %v, want KindInvalid", name, err)
		}
	}
	for _, e := range []Entry{release(func(*Entry) {}), metadata(func(*Entry) {})} {
		if _, err := e.Leaf(); err != nil {
			t.Errorf("valid %s entry: %v", e.Kind, err)
		}
	}
}
