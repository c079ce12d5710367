package osv

import (
	"testing"
	"time"
)

type matchCase struct {
	pkg   Package
	want  bool
	match Match
}

func checkMatches(t *testing.T, r *Record, cases []matchCase) {
	t.Helper()
	for _, c := range cases {
		m, ok := r.Affects(c.pkg)
		if ok != c.want || ok && m != c.match {
			t.Errorf("%s.Affects(%+v) = %+v, %v; want %+v, %v", r.ID, c.pkg, m, ok, c.match, c.want)
		}
	}
}

func npm(v string) Package { return Package{Ecosystem: "npm", Name: "x", Version: v} }

func TestAffectsLastAffected(t *testing.T) {
	r := mustParse(t, record(`{"package":{"ecosystem":"npm","name":"x"},"ranges":[{"type":"ECOSYSTEM",
		"events":[{"introduced":"0"},{"last_affected":"2.1.214"}]}]}`))
	checkMatches(t, r, []matchCase{
		{npm("0.0.1"), true, Match{Range: 0}},
		{npm("2.1.214"), true, Match{Range: 0}}, // last_affected is inclusive and names no fix
		{npm("2.1.215"), false, Match{}},
	})
}

func TestAffectsLimits(t *testing.T) {
	r := mustParse(t, record(`{"package":{"ecosystem":"npm","name":"x"},"ranges":[
		{"type":"SEMVER","events":[{"introduced":"1.0.0"},{"limit":"2.0.0"}]},
		{"type":"SEMVER","events":[{"introduced":"5.0.0"},{"limit":"6.0.0"},{"limit":"7.0.0"}]},
		{"type":"SEMVER","events":[{"introduced":"10.0.0"},{"fixed":"10.1.0"},{"limit":"*"}]}]}`))
	checkMatches(t, r, []matchCase{
		{npm("0.9.0"), false, Match{}},
		{npm("1.5.0"), true, Match{Range: 0}},
		{npm("2.0.0"), false, Match{}}, // the limit is exclusive
		{npm("6.5.0"), true, Match{Range: 1}},
		{npm("7.0.0"), false, Match{}},
		{npm("10.0.5"), true, Match{Range: 2, Fixed: "10.1.0"}},
		{npm("10.1.0"), false, Match{}},
	})
}

// Events need not be sorted in the record; the timeline is sorted by
// version before it is read, with introduced "0" first.
func TestAffectsSortsEvents(t *testing.T) {
	r := mustParse(t, record(`{"package":{"ecosystem":"Debian:12","name":"x"},"ranges":[{"type":"ECOSYSTEM",
		"events":[{"fixed":"2.0-1"},{"introduced":"1.5-1"},{"fixed":"1.0-1"},{"introduced":"0"}]}]}`))
	deb := func(v string) Package { return Package{Ecosystem: "Debian:12", Name: "x", Version: v} }
	checkMatches(t, r, []matchCase{
		{deb("0~1"), true, Match{Fixed: "1.0-1"}}, // "0~1" < "0" in dpkg, but introduced "0" is the beginning
		{deb("0.9-3"), true, Match{Fixed: "1.0-1"}},
		{deb("1.0-1"), false, Match{}},
		{deb("1.2-1"), false, Match{}},
		{deb("1.5-1"), true, Match{Fixed: "2.0-1"}},
		{deb("1.10-1"), true, Match{Fixed: "2.0-1"}}, // 1.10 > 1.5
		{deb("2.0-1"), false, Match{}},
	})
}

func TestAffectsVersionsList(t *testing.T) {
	r := mustParse(t, record(`{"package":{"ecosystem":"Debian:12","name":"x"},
		"ranges":[{"type":"GIT","repo":"https://example.com/x","events":[{"introduced":"0"},{"fixed":"1.0-1"}]},
		          {"type":"ECOSYSTEM","events":[{"introduced":"2.0-1"},{"fixed":"3.0-1"}]}],
		"versions":["1.0-1","0:5.0-1","v9"]}`))
	deb := func(v string) Package { return Package{Ecosystem: "Debian:12", Name: "x", Version: v} }
	checkMatches(t, r, []matchCase{
		{deb("1.0-1"), true, Match{Range: -1, Fixed: "3.0-1"}}, // listed; the GIT range never matches
		{deb("5.0-1"), true, Match{Range: -1}},                 // equal to "0:5.0-1" under dpkg
		{deb("v9"), true, Match{Range: -1}},                    // not a Debian version, but listed verbatim
		{deb("2.5-1"), true, Match{Range: 1, Fixed: "3.0-1"}},
		{deb("0.5-1"), false, Match{}}, // below 1.0-1 only by the GIT range, which is never evaluated
		{deb("1.0-2"), false, Match{}},
	})
}

func TestAffectsIgnoresUnevaluatedRanges(t *testing.T) {
	r := mustParse(t, record(`{"package":{"ecosystem":"npm","name":"x"},"ranges":[
		{"type":"GIT","repo":"https://example.com/x","events":[{"introduced":"0"}]},
		{"type":"FUTURE","events":[{"introduced":"0"}]}]}`))
	checkMatches(t, r, []matchCase{{npm("1.0.0"), false, Match{}}})
	commitsOnly := mustParse(t, record(`{"ranges":[{"type":"GIT","repo":"https://example.com/x","events":[{"introduced":"0"}]}],"versions":["v1.0"]}`))
	checkMatches(t, commitsOnly, []matchCase{{Package{Version: "v1.0"}, false, Match{}}})
}

func TestAffectsWithdrawnAndEmpty(t *testing.T) {
	r := mustParse(t, record(`{"package":{"ecosystem":"npm","name":"x"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"}]}]}`))
	checkMatches(t, r, []matchCase{
		{npm("1.0.0"), true, Match{}},
		{npm(""), false, Match{}},
		{npm("not-a-version"), false, Match{}},
		{Package{Ecosystem: "npm", Name: "y", Version: "1.0.0"}, false, Match{}},
		{Package{Ecosystem: "Go", Name: "x", Version: "1.0.0"}, false, Match{}},
	})
	r.Withdrawn = time.Now()
	checkMatches(t, r, []matchCase{{npm("1.0.0"), false, Match{}}})
}

// A Record built by hand is not checked by Parse; a version its scheme
// cannot read must make the range match nothing rather than everything.
func TestAffectsHandBuiltRecord(t *testing.T) {
	r := &Record{ID: "HAND-1", Affected: []Affected{{
		Package: AffectedPackage{Ecosystem: "npm", Name: "x"},
		Ranges:  []AffectedRange{{Type: RangeSemVer, Events: []Event{{Introduced, "not.a.version"}}}},
	}}}
	checkMatches(t, r, []matchCase{{npm("1.0.0"), false, Match{}}})
}

func TestEcosystemAndNameMatching(t *testing.T) {
	for _, c := range []struct {
		affected, pkg string
		want          bool
	}{
		{"Debian", "Debian:11", true}, // an entry without a release covers every release
		{"Debian:9", "Debian:9.5", true},
		{"Debian:9", "Debian", false},
		{"Debian:9", "Debian:10", false},
		{"Debian:1", "Debian:10", false},
		{"Ubuntu", "Ubuntu:Pro:16.04:LTS", true},
		{"Ubuntu:22.04:LTS", "Ubuntu:22.04", true},
		{"Ubuntu:22.04", "Ubuntu:22.04:LTS", true},
		{"Ubuntu:Pro:22.04:LTS", "Ubuntu:22.04:LTS", false},
		{"Ubuntu:22.04:LTS", "Ubuntu:22.10", false},
		{"Alpine:v3.16", "Alpine:3.16", true},
		{"Alpine:v3.16", "Alpine:v3.16.1", true},
		{"Alpine:v3.16", "Alpine:v3.1", false},
		{"Alpine:v3.16", "Alpine:v3.17", false},
		{"Maven", "Maven:https://maven.google.com", false},
		{"npm", "npm", true},
		{"npm", "NPM", false},
		{"Debian:9", "Ubuntu:9", false},
	} {
		if got := sameEcosystem(c.affected, c.pkg); got != c.want {
			t.Errorf("sameEcosystem(%q, %q) = %v, want %v", c.affected, c.pkg, got, c.want)
		}
	}
	for _, c := range []struct {
		eco, affected, pkg string
		want               bool
	}{
		{"Go", "github.com/BurntSushi/toml", "github.com/burntsushi/toml", true},
		{"PyPI", "Foo_Bar.baz", "foo-bar-baz", true},
		{"PyPI", "foo", "foo2", false},
		{"npm", "JSONStream", "jsonstream", false},
		{"Debian:9", "openssl", "libssl1.1", false},
	} {
		if got := sameName(c.eco, c.affected, c.pkg); got != c.want {
			t.Errorf("sameName(%q, %q, %q) = %v, want %v", c.eco, c.affected, c.pkg, got, c.want)
		}
	}
}
