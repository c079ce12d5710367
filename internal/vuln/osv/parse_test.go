package osv

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// record builds a minimal valid record around one affected entry.
func record(affected string) string {
	return `{"id":"TEST-1","modified":"2024-01-02T03:04:05Z","affected":[` + affected + `]}`
}

func mustParse(t *testing.T, js string) *Record {
	t.Helper()
	r, err := Parse(strings.NewReader(js), 1<<20)
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, js)
	}
	return r
}

func TestParseRejects(t *testing.T) {
	deb := func(events string) string {
		return record(`{"package":{"ecosystem":"Debian:9","name":"x"},"ranges":[{"type":"ECOSYSTEM","events":[` + events + `]}]}`)
	}
	for _, c := range []struct {
		name, json, want string
	}{
		{"not JSON", `{"id":`, "decoding record"},
		{"array", `[]`, "decoding record"},
		{"trailing data", record(``) + `{}`, "decoding record"},
		{"id of wrong type", `{"id":5,"modified":"2024-01-02T03:04:05Z"}`, "decoding record"},
		{"no id", `{"modified":"2024-01-02T03:04:05Z"}`, "no id"},
		{"blank id", `{"id":"  ","modified":"2024-01-02T03:04:05Z"}`, "no id"},
		{"no modified", `{"id":"X-1"}`, "record X-1: modified is missing"},
		{"bad modified", `{"id":"X-1","modified":"yesterday"}`, `modified "yesterday" is not an RFC 3339 time`},
		{"bad withdrawn", `{"id":"X-1","modified":"2024-01-02T03:04:05Z","withdrawn":"2024-01-02"}`, "withdrawn"},
		{"severity without score", `{"id":"X-1","modified":"2024-01-02T03:04:05Z","severity":[{"type":"CVSS_V3"}]}`, "severity[0] needs a type and a score"},
		{"package without name", record(`{"package":{"ecosystem":"npm"}}`), "affected[0]: package needs an ecosystem and a name"},
		{"package without ecosystem", record(`{"package":{"name":"x"}}`), "package needs an ecosystem and a name"},
		{"empty listed version", record(`{"package":{"ecosystem":"npm","name":"x"},"versions":["1.0.0",""]}`), "versions[1] is empty"},
		{"range without type", record(`{"package":{"ecosystem":"npm","name":"x"},"ranges":[{"events":[{"introduced":"0"}]}]}`), "ranges[0]: range has no type"},
		{"git without repo", record(`{"package":{"ecosystem":"npm","name":"x"},"ranges":[{"type":"GIT","events":[{"introduced":"0"}]}]}`), "GIT range has no repo"},
		{"ecosystem range without package", record(`{"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"}]}]}`), "ECOSYSTEM range in an entry without a package"},
		{"no introduced", deb(`{"fixed":"1.0-1"}`), "range has no introduced event"},
		{"no events", deb(``), "range has no introduced event"},
		{"two kinds in one event", deb(`{"introduced":"0","fixed":"1.0-1"}`), "events[0]: event has more than one"},
		{"no kind", deb(`{"introduced":"0"},{}`), "events[1]: event has none of"},
		{"null kind", deb(`{"introduced":null}`), "event has none of"},
		{"empty version", deb(`{"introduced":""}`), "introduced event has an empty version"},
		{"fixed and last_affected", deb(`{"introduced":"0"},{"fixed":"1.0-1"},{"last_affected":"1.0-0"}`), "both fixed and last_affected"},
		{"bad debian version", deb(`{"introduced":"0"},{"fixed":"abc"}`), `events[1]: fixed: debian version "abc"`},
		{"bad semver version", record(`{"package":{"ecosystem":"Go","name":"x"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.2"}]}]}`), "not MAJOR.MINOR.PATCH"},
		{"bad alpine version", record(`{"package":{"ecosystem":"Alpine:v3.16","name":"x"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"1.0-1"}]}]}`), "alpine version"},
		{"bad limit", deb(`{"introduced":"0"},{"limit":"x"}`), "limit: debian version"},
	} {
		_, err := Parse(strings.NewReader(c.json), 1<<20)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Parse error = %v, want one containing %q", c.name, err, c.want)
		}
	}
}

func TestParseSizeAndReader(t *testing.T) {
	js := record(``)
	if _, err := Parse(strings.NewReader(js), int64(len(js))); err != nil {
		t.Errorf("record of exactly max bytes: %v", err)
	}
	if _, err := Parse(strings.NewReader(js), int64(len(js)-1)); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("record over max: %v", err)
	}
	if _, err := Parse(strings.NewReader(js), 0); err == nil || !strings.Contains(err.Error(), "not positive") {
		t.Errorf("max 0: %v", err)
	}
	boom := errors.New("disk on fire")
	if _, err := Parse(failingReader{boom}, 100); !errors.Is(err, boom) {
		t.Errorf("reader error = %v, want it wrapped", err)
	}
}

type failingReader struct{ err error }

func (r failingReader) Read([]byte) (int, error) { return 0, r.err }

func TestParseToleratesAndKeeps(t *testing.T) {
	r := mustParse(t, `{
		"schema_version": "1.9.0", "id": "TEST-2", "modified": "2024-01-02T03:04:05.123456789Z",
		"published": "2023-12-31T00:00:00+01:00", "withdrawn": "2024-02-01T00:00:00Z",
		"a_future_field": {"x": [1, 2]}, "credits": [{"name": "someone"}],
		"aliases": ["CVE-2024-1"], "related": ["GHSA-x"], "summary": "s", "details": "d",
		"severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N"}],
		"references": [{"type": "FIX", "url": "https://example.com/fix"}],
		"database_specific": {"k": "v"},
		"affected": [
			{"package": {"ecosystem": "npm", "name": "x", "purl": "pkg:npm/x"},
			 "severity": [{"type": "CVSS_V4", "score": "CVSS:4.0/AV:N"}],
			 "ranges": [
				{"type": "SEMVER", "events": [{"introduced": "0", "note": "ignored"}, {"fixed": "1.0.0"}], "database_specific": {"r": 1}},
				{"type": "GIT", "repo": "https://example.com/x.git", "events": [{"introduced": "0"}, {"fixed": "abc123"}]},
				{"type": "FUTURE", "events": [{"introduced": "whatever"}]}
			 ],
			 "versions": ["0.9.0"], "ecosystem_specific": {"e": 1}, "database_specific": {"d": 2}},
			{"ranges": [{"type": "GIT", "repo": "https://example.com/y.git", "events": [{"introduced": "0"}]}]}
		]}`)
	if r.SchemaVersion != "1.9.0" || r.Summary != "s" || r.Details != "d" || r.Aliases[0] != "CVE-2024-1" ||
		r.Related[0] != "GHSA-x" || r.References[0].URL != "https://example.com/fix" || string(r.DatabaseSpecific) != `{"k": "v"}` {
		t.Errorf("top-level fields: %+v", r)
	}
	if want := time.Date(2024, 1, 2, 3, 4, 5, 123456789, time.UTC); !r.Modified.Equal(want) {
		t.Errorf("modified = %v", r.Modified)
	}
	if want := time.Date(2023, 12, 30, 23, 0, 0, 0, time.UTC); !r.Published.Equal(want) {
		t.Errorf("published = %v", r.Published)
	}
	if r.Withdrawn.IsZero() {
		t.Error("withdrawn lost")
	}
	a := r.Affected[0]
	if a.Package.Purl != "pkg:npm/x" || a.Severity[0].Type != "CVSS_V4" || len(a.Ranges) != 3 ||
		a.Ranges[1].Repo != "https://example.com/x.git" || a.Ranges[2].Type != "FUTURE" ||
		string(a.Ranges[0].DatabaseSpecific) != `{"r": 1}` || string(a.EcosystemSpecific) != `{"e": 1}` ||
		string(a.DatabaseSpecific) != `{"d": 2}` || a.Versions[0] != "0.9.0" {
		t.Errorf("affected[0] = %+v", a)
	}
	if want := []Event{{Introduced, "0"}, {Fixed, "1.0.0"}}; len(a.Ranges[0].Events) != 2 ||
		a.Ranges[0].Events[0] != want[0] || a.Ranges[0].Events[1] != want[1] {
		t.Errorf("events = %v", a.Ranges[0].Events)
	}
	if r.Affected[1].Package != (AffectedPackage{}) {
		t.Errorf("package-less entry = %+v", r.Affected[1])
	}
}
