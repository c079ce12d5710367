package osv

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// corpusDir is shared/testdata/vulnmatch beside the module root. The corpus
// is part of the project: a checkout without it fails rather than skips.
func corpusDir(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test directory")
		}
		dir = parent
	}
	corpus := filepath.Join(dir, "..", "shared", "testdata", "vulnmatch")
	if _, err := os.Stat(filepath.Join(corpus, "osv")); err != nil {
		t.Fatalf("vulnerability corpus missing: %v", err)
	}
	return corpus
}

func loadRecords(t *testing.T) map[string]*Record {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(corpusDir(t), "osv", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no OSV records in the corpus (%v)", err)
	}
	recs := map[string]*Record{}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		r, err := Parse(fh, 1<<20)
		fh.Close()
		if err != nil {
			t.Fatalf("%s: %v", filepath.Base(f), err)
		}
		if want := strings.TrimSuffix(filepath.Base(f), ".json"); r.ID != want {
			t.Fatalf("%s has id %q", f, r.ID)
		}
		recs[r.ID] = r
	}
	return recs
}

func TestParseRealRecords(t *testing.T) {
	recs := loadRecords(t)
	want := map[string]int{ // affected entries per record
		"ALPINE-CVE-2025-26519": 9, "DLA-3008-1": 1, "DLA-3012-1": 1, "DLA-3022-1": 1, "DLA-3051-1": 1,
		"GHSA-5955-9wpr-37jh": 3, "GO-2022-0493": 2, "USN-5570-1": 3, "USN-5702-1": 3, "USN-5710-1": 1,
	}
	if len(recs) != len(want) {
		t.Fatalf("corpus has %d records, want %d", len(recs), len(want))
	}
	for id, n := range want {
		r := recs[id]
		if r == nil {
			t.Fatalf("record %s missing", id)
		}
		if len(r.Affected) != n {
			t.Errorf("%s: %d affected entries, want %d", id, len(r.Affected), n)
		}
		if r.Modified.IsZero() || r.Published.IsZero() || !r.Withdrawn.IsZero() {
			t.Errorf("%s: times modified=%v published=%v withdrawn=%v", id, r.Modified, r.Published, r.Withdrawn)
		}
	}
	gh := recs["GHSA-5955-9wpr-37jh"]
	if gh.SchemaVersion != "1.3.0" || !slices.Equal(gh.Aliases, []string{"CVE-2021-37713"}) ||
		len(gh.Severity) != 1 || gh.Severity[0].Type != "CVSS_V3" || len(gh.References) != 6 ||
		!strings.Contains(string(gh.DatabaseSpecific), "CWE-22") {
		t.Errorf("GHSA-5955-9wpr-37jh fields: %+v", gh)
	}
	goRec := recs["GO-2022-0493"]
	if ev := goRec.Affected[0].Ranges[0].Events; len(ev) != 4 || ev[2] != (Event{Introduced, "1.18.0-0"}) {
		t.Errorf("GO-2022-0493 stdlib events = %v", ev)
	}
	if !strings.Contains(string(goRec.Affected[1].EcosystemSpecific), "golang.org/x/sys/unix") {
		t.Errorf("GO-2022-0493 ecosystem_specific lost: %s", goRec.Affected[1].EcosystemSpecific)
	}
	usn := recs["USN-5570-1"]
	if usn.Affected[0].Package != (AffectedPackage{"Ubuntu:Pro:14.04:LTS", "zlib",
		"pkg:deb/ubuntu/zlib@1:1.2.8.dfsg-1ubuntu1.1+esm2?arch=source&distro=trusty/esm"}) {
		t.Errorf("USN-5570-1 package = %+v", usn.Affected[0].Package)
	}
	if !slices.Equal(usn.Upstream, []string{"UBUNTU-CVE-2022-37434"}) {
		t.Errorf("USN-5570-1 upstream = %v", usn.Upstream)
	}
}

type boundary struct {
	id        string
	pkg       Package
	affected  bool
	entry     int    // Match.Affected
	rng       int    // Match.Range
	fixed     string // Match.Fixed
	rationale string
}

// The versions just below, at and above each fixed version, and the same
// package in releases or ecosystems the record does not cover.
func TestRealRecordBoundaries(t *testing.T) {
	recs := loadRecords(t)
	deb9 := func(name, v string) Package { return Package{Ecosystem: "Debian:9", Name: name, Version: v} }
	pkg := func(eco, name, v string) Package { return Package{Ecosystem: eco, Name: name, Version: v} }
	yes := func(id string, p Package, entry, rng int, fixed string) boundary {
		return boundary{id: id, pkg: p, affected: true, entry: entry, rng: rng, fixed: fixed}
	}
	no := func(id string, p Package, why string) boundary { return boundary{id: id, pkg: p, rationale: why} }
	const (
		dla3008 = "DLA-3008-1"
		dla3012 = "DLA-3012-1"
		dla3022 = "DLA-3022-1"
		dla3051 = "DLA-3051-1"
		usn5710 = "USN-5710-1"
		usn5702 = "USN-5702-1"
		usn5570 = "USN-5570-1"
		alpine  = "ALPINE-CVE-2025-26519"
		goVuln  = "GO-2022-0493"
		ghsa    = "GHSA-5955-9wpr-37jh"
	)
	for _, c := range []boundary{
		// openssl in Debian 9, fixed in 1.1.0l-1~deb9u6.
		yes(dla3008, deb9("openssl", "1.1.0f-3+deb9u2"), 0, 0, "1.1.0l-1~deb9u6"),
		yes(dla3008, deb9("openssl", "1.1.0l-1~deb9u5"), 0, 0, "1.1.0l-1~deb9u6"),
		yes(dla3008, deb9("openssl", "0:1.1.0f-3"), 0, 0, "1.1.0l-1~deb9u6"),
		yes(dla3008, pkg("Debian:9.13", "openssl", "1.1.0f-3"), 0, 0, "1.1.0l-1~deb9u6"),
		no(dla3008, deb9("openssl", "1.1.0l-1~deb9u6"), "at the fix"),
		no(dla3008, deb9("openssl", "1.1.0l-1~deb9u7"), "above the fix"),
		no(dla3008, deb9("openssl", "1.1.0l-1"), "~deb9u6 sorts before the bare revision"),
		no(dla3008, pkg("Debian:10", "openssl", "1.1.0f-3"), "the record covers Debian 9 only"),
		no(dla3008, pkg("Debian:11", "openssl", "1.1.0f-3"), "the record covers Debian 9 only"),
		no(dla3008, pkg("Debian", "openssl", "1.1.0f-3"), "an unknown release is not Debian 9"),
		no(dla3008, pkg("Ubuntu:22.04:LTS", "openssl", "1.1.0f-3"), "another distribution"),
		no(dla3008, deb9("libssl1.1", "1.1.0f-3+deb9u2"), "OSV names the source package"),
		no(dla3008, deb9("openssl1.0", "1.0.2l-2+deb9u3"), "a different source package"),
		// libxml2 in Debian 9, fixed in 2.9.4+dfsg1-2.2+deb9u7.
		yes(dla3012, deb9("libxml2", "2.9.4+dfsg1-2.2+deb9u6"), 0, 0, "2.9.4+dfsg1-2.2+deb9u7"),
		yes(dla3012, deb9("libxml2", "2.9.4+dfsg1-2.2"), 0, 0, "2.9.4+dfsg1-2.2+deb9u7"),
		no(dla3012, deb9("libxml2", "2.9.4+dfsg1-2.2+deb9u7"), "at the fix"),
		no(dla3012, deb9("libxml2", "2.9.4+dfsg1-2.2+deb9u8"), "above the fix"),
		no(dla3012, deb9("libxml2", "2.9.10+dfsg-6"), "2.9.10 > 2.9.4 though not as strings"),
		no(dla3012, pkg("Debian:11", "libxml2", "2.9.4+dfsg1-2.2"), "wrong release"),
		// dpkg in Debian 9, fixed in 1.18.26.
		yes(dla3022, deb9("dpkg", "1.18.25"), 0, 0, "1.18.26"),
		yes(dla3022, deb9("dpkg", "1.18.26~rc1"), 0, 0, "1.18.26"),
		no(dla3022, deb9("dpkg", "1.18.26"), "at the fix"),
		no(dla3022, deb9("dpkg", "1.18.100"), "1.18.100 > 1.18.26 though not as strings"),
		no(dla3022, pkg("Ubuntu:20.04:LTS", "dpkg", "1.18.25"), "another distribution"),
		// tzdata in Debian 9, fixed in 2021a-0+deb9u4.
		yes(dla3051, deb9("tzdata", "2018e-0+deb9u1"), 0, 0, "2021a-0+deb9u4"),
		yes(dla3051, deb9("tzdata", "2021a-0+deb9u3"), 0, 0, "2021a-0+deb9u4"),
		no(dla3051, deb9("tzdata", "2021a-0+deb9u4"), "at the fix"),
		no(dla3051, deb9("tzdata", "2024a-0+deb9u1"), "above the fix"),
		no(dla3051, pkg("Debian:12", "tzdata", "2018e-0+deb9u1"), "wrong release"),
		// openssl in Ubuntu 22.04, fixed in 3.0.2-0ubuntu1.7.
		yes(usn5710, pkg("Ubuntu:22.04:LTS", "openssl", "3.0.2-0ubuntu1.6"), 0, 0, "3.0.2-0ubuntu1.7"),
		yes(usn5710, pkg("Ubuntu:22.04", "openssl", "3.0.2-0ubuntu1.6"), 0, 0, "3.0.2-0ubuntu1.7"),
		no(usn5710, pkg("Ubuntu:22.04:LTS", "openssl", "3.0.2-0ubuntu1.7"), "at the fix"),
		no(usn5710, pkg("Ubuntu:22.04:LTS", "openssl", "3.0.2-0ubuntu1.8"), "above the fix"),
		no(usn5710, pkg("Ubuntu:22.04:LTS", "openssl", "3.0.2-0ubuntu1.10"), "1.10 > 1.7 though not as strings"),
		no(usn5710, pkg("Ubuntu:20.04:LTS", "openssl", "1.1.1f-1ubuntu2.16"), "the record covers 22.04 only"),
		no(usn5710, pkg("Ubuntu:Pro:22.04:LTS", "openssl", "3.0.2-0ubuntu1.6"), "Pro is its own ecosystem"),
		no(usn5710, pkg("Debian:12", "openssl", "3.0.2-0ubuntu1.6"), "another distribution"),
		// curl in Ubuntu 18.04, 20.04 and 22.04.
		yes(usn5702, pkg("Ubuntu:18.04:LTS", "curl", "7.58.0-2ubuntu3.20"), 0, 0, "7.58.0-2ubuntu3.21"),
		no(usn5702, pkg("Ubuntu:18.04:LTS", "curl", "7.58.0-2ubuntu3.21"), "at the fix"),
		yes(usn5702, pkg("Ubuntu:20.04:LTS", "curl", "7.68.0-1ubuntu2.13"), 1, 0, "7.68.0-1ubuntu2.14"),
		no(usn5702, pkg("Ubuntu:20.04:LTS", "curl", "7.68.0-1ubuntu2.14"), "at the fix"),
		no(usn5702, pkg("Ubuntu:20.04:LTS", "curl", "7.68.0-1ubuntu2.15"), "above the fix"),
		no(usn5702, pkg("Ubuntu:20.04:LTS", "curl", "7.81.0-1ubuntu1.4"), "above the 20.04 fix"),
		yes(usn5702, pkg("Ubuntu:22.04:LTS", "curl", "7.81.0-1ubuntu1.4"), 2, 0, "7.81.0-1ubuntu1.6"),
		yes(usn5702, pkg("Ubuntu:22.04:LTS", "curl", "7.81.0-1ubuntu1.5"), 2, 0, "7.81.0-1ubuntu1.6"),
		no(usn5702, pkg("Ubuntu:22.04:LTS", "curl", "7.81.0-1ubuntu1.6"), "at the fix"),
		no(usn5702, pkg("Ubuntu:22.10", "curl", "7.85.0-1"), "the record does not cover 22.10"),
		no(usn5702, pkg("Ubuntu:22.04:LTS", "libcurl4", "7.81.0-1ubuntu1.4"), "OSV names the source package"),
		// zlib: only Ubuntu Pro 14.04 and 16.04, and 18.04.
		yes(usn5570, pkg("Ubuntu:18.04:LTS", "zlib", "1:1.2.11.dfsg-0ubuntu2.1"), 2, 0, "1:1.2.11.dfsg-0ubuntu2.2"),
		yes(usn5570, pkg("Ubuntu:18.04:LTS", "zlib", "1.2.11.dfsg-0ubuntu2.2"), 2, 0, "1:1.2.11.dfsg-0ubuntu2.2"),
		no(usn5570, pkg("Ubuntu:18.04:LTS", "zlib", "1:1.2.11.dfsg-0ubuntu2.2"), "at the fix"),
		yes(usn5570, pkg("Ubuntu:Pro:16.04:LTS", "zlib", "1:1.2.8.dfsg-2ubuntu4.3"), 1, 0, "1:1.2.8.dfsg-2ubuntu4.3+esm2"),
		no(usn5570, pkg("Ubuntu:Pro:16.04:LTS", "zlib", "1:1.2.8.dfsg-2ubuntu4.3+esm2"), "at the fix"),
		no(usn5570, pkg("Ubuntu:16.04:LTS", "zlib", "1:1.2.8.dfsg-2ubuntu4.3"), "only the Pro ecosystem is listed"),
		no(usn5570, pkg("Ubuntu:20.04:LTS", "zlib", "1:1.2.11.dfsg-2ubuntu1.3"), "no 20.04 entry"),
		no(usn5570, pkg("Ubuntu:22.04:LTS", "zlib", "1:1.2.11.dfsg-2ubuntu9.2"), "no 22.04 entry"),
		// musl, per Alpine branch.
		yes(alpine, pkg("Alpine:v3.16", "musl", "1.2.3-r0"), 0, 0, "1.2.3-r4"),
		yes(alpine, pkg("Alpine:v3.16", "musl", "1.2.3-r3"), 0, 0, "1.2.3-r4"),
		yes(alpine, pkg("Alpine:v3.16", "musl", "0.9.13"), 0, 0, "1.2.3-r4"),
		yes(alpine, pkg("Alpine:3.16", "musl", "1.2.3-r0"), 0, 0, "1.2.3-r4"),
		no(alpine, pkg("Alpine:v3.16", "musl", "0.9.12"), "below introduced"),
		no(alpine, pkg("Alpine:v3.16", "musl", "1.2.3-r4"), "at the fix"),
		no(alpine, pkg("Alpine:v3.16", "musl", "1.2.3-r5"), "above the 3.16 fix, though below 3.17's"),
		yes(alpine, pkg("Alpine:v3.17", "musl", "1.2.3-r5"), 1, 0, "1.2.3-r6"),
		yes(alpine, pkg("Alpine:v3.19", "musl", "1.2.4_git20230717-r4"), 3, 0, "1.2.4_git20230717-r5"),
		yes(alpine, pkg("Alpine:v3.19", "musl", "1.2.4-r3"), 3, 0, "1.2.4_git20230717-r5"),
		no(alpine, pkg("Alpine:v3.19", "musl", "1.2.4_git20230717-r5"), "at the fix"),
		yes(alpine, pkg("Alpine:v3.22", "musl", "1.2.5-r9"), 6, 0, "1.2.5-r10"),
		no(alpine, pkg("Alpine:v3.22", "musl", "1.2.5-r10"), "r10 > r9 though not as strings"),
		no(alpine, pkg("Alpine:v3.15", "musl", "1.2.2-r7"), "the record has no 3.15 entry"),
		no(alpine, pkg("Alpine:v3.16", "musl-utils", "1.2.3-r0"), "OSV names the origin package"),
		// Go standard library and golang.org/x/sys.
		yes(goVuln, pkg("Go", "stdlib", "1.17.9"), 0, 0, "1.17.10"),
		no(goVuln, pkg("Go", "stdlib", "1.17.10"), "at the first fix"),
		no(goVuln, pkg("Go", "stdlib", "1.17.11"), "between the fix and the next introduced"),
		yes(goVuln, pkg("Go", "stdlib", "1.18.0-rc1"), 0, 0, "1.18.2"),
		yes(goVuln, pkg("Go", "stdlib", "1.18.1"), 0, 0, "1.18.2"),
		no(goVuln, pkg("Go", "stdlib", "1.18.2"), "at the second fix"),
		no(goVuln, pkg("Go", "stdlib", "1.19.0"), "above both fixes"),
		yes(goVuln, pkg("Go", "golang.org/x/sys", "v0.0.0-20220412200000-0123456789ab"), 1, 0, "0.0.0-20220412211240-33da011f77ad"),
		no(goVuln, pkg("Go", "golang.org/x/sys", "0.0.0-20220412211240-33da011f77ad"), "at the fix"),
		no(goVuln, pkg("Go", "golang.org/x/sys", "v0.0.0-20220520151302-bc2c85ada10a"), "a later pseudo-version"),
		no(goVuln, pkg("npm", "stdlib", "1.17.9"), "another ecosystem"),
		// tar on npm: three branches.
		yes(ghsa, pkg("npm", "tar", "4.4.17"), 0, 0, "4.4.18"),
		no(ghsa, pkg("npm", "tar", "4.4.18"), "at the first fix"),
		no(ghsa, pkg("npm", "tar", "4.4.19"), "between branches"),
		yes(ghsa, pkg("npm", "tar", "5.0.0"), 1, 0, "5.0.10"),
		yes(ghsa, pkg("npm", "tar", "5.0.9"), 1, 0, "5.0.10"),
		no(ghsa, pkg("npm", "tar", "5.0.10"), "at the second fix"),
		no(ghsa, pkg("npm", "tar", "6.0.0-beta.1"), "a pre-release before 6.0.0"),
		yes(ghsa, pkg("npm", "tar", "6.1.8"), 2, 0, "6.1.9"),
		no(ghsa, pkg("npm", "tar", "6.1.9"), "at the third fix"),
		no(ghsa, pkg("npm", "tar", "6.1.11"), "6.1.11 > 6.1.9 though not as strings"),
		no(ghsa, pkg("Debian:9", "tar", "1.29b-1.1"), "GNU tar is not the npm package"),
	} {
		m, ok := recs[c.id].Affects(c.pkg)
		if ok != c.affected {
			t.Errorf("%s.Affects(%+v) = %v, want %v (%s)", c.id, c.pkg, ok, c.affected, c.rationale)
			continue
		}
		if want := (Match{Affected: c.entry, Range: c.rng, Fixed: c.fixed}); ok && m != want {
			t.Errorf("%s.Affects(%+v) = %+v, want %+v", c.id, c.pkg, m, want)
		}
	}
}

// component is an SBOM entry read directly from the SBOM JSON.
type component struct {
	purl, distro, sourceName, sourceVersion string
}

var builtFrom = regexp.MustCompile(`^built package from: (\S+) (\S+)$`)

// readSPDX reads a trivy SPDX 2.2 document: each package's purl, the
// source package from sourceInfo, and the release from the
// OperatingSystem package.
func readSPDX(t *testing.T, path string) []component {
	var doc struct {
		Packages []struct {
			SPDXID       string `json:"SPDXID"`
			Name         string `json:"name"`
			VersionInfo  string `json:"versionInfo"`
			SourceInfo   string `json:"sourceInfo"`
			ExternalRefs []struct {
				Type    string `json:"referenceType"`
				Locator string `json:"referenceLocator"`
			} `json:"externalRefs"`
		} `json:"packages"`
	}
	readJSON(t, path, &doc)
	var distro string
	for _, p := range doc.Packages {
		if strings.HasPrefix(p.SPDXID, "SPDXRef-OperatingSystem-") {
			distro = p.Name + "-" + p.VersionInfo
		}
	}
	if distro == "" {
		t.Fatalf("%s names no operating system", path)
	}
	var cs []component
	for _, p := range doc.Packages {
		for _, ref := range p.ExternalRefs {
			if ref.Type != "purl" {
				continue
			}
			c := component{purl: ref.Locator, distro: distro}
			if m := builtFrom.FindStringSubmatch(p.SourceInfo); m != nil {
				c.sourceName, c.sourceVersion = m[1], m[2]
			}
			cs = append(cs, c)
		}
	}
	return cs
}

// readCycloneDX reads a syft CycloneDX 1.4 document; the release and the
// source package are in each purl's distro and upstream qualifiers.
func readCycloneDX(t *testing.T, path string) []component {
	var doc struct {
		Components []struct {
			Purl string `json:"purl"`
		} `json:"components"`
	}
	readJSON(t, path, &doc)
	var cs []component
	for _, c := range doc.Components {
		if c.Purl != "" {
			cs = append(cs, component{purl: c.Purl})
		}
	}
	return cs
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestSBOMMatches checks every record against every component of the four
// real SBOMs and compares the complete set of matches with the expected one,
// so a near miss that matched would fail as surely as a missed match.
func TestSBOMMatches(t *testing.T) {
	recs := loadRecords(t)
	sbomDir := filepath.Join(corpusDir(t), "sbom")
	for _, c := range []struct {
		file string
		read func(*testing.T, string) []component
		want []string // "record purl fixed"
	}{
		{
			file: "ibmcom-mb-jenkins-slave.debian-9.5.trivy.spdx.json",
			read: readSPDX,
			// libssl1.0.2 comes from openssl1.0, which DLA-3008-1 does not name;
			// curl, zlib1g and tar have records only for other ecosystems.
			want: []string{
				"DLA-3008-1 pkg:deb/debian/libssl1.1@1.1.0f-3+deb9u2?distro=debian-9.5 1.1.0l-1~deb9u6",
				"DLA-3008-1 pkg:deb/debian/openssl@1.1.0f-3+deb9u2?distro=debian-9.5 1.1.0l-1~deb9u6",
				"DLA-3012-1 pkg:deb/debian/libxml2@2.9.4+dfsg1-2.2+deb9u2?distro=debian-9.5 2.9.4+dfsg1-2.2+deb9u7",
				"DLA-3022-1 pkg:deb/debian/dpkg@1.18.25?distro=debian-9.5 1.18.26",
				"DLA-3051-1 pkg:deb/debian/tzdata@2018e-0+deb9u1?distro=debian-9.5 2021a-0+deb9u4",
			},
		},
		{
			file: "balenalib-beaglebone-black-ubuntu-node.ubuntu-22.04.trivy.spdx.json",
			read: readSPDX,
			// libssl3 was built from openssl 3.0.2-0ubuntu1.6, one below the fix;
			// the openssl binary is at the fix, curl and libcurl4 are at USN-5702-1's
			// fix, USN-5570-1 has no 22.04 entry and npm tar 6.1.11 is past 6.1.9.
			want: []string{
				"USN-5710-1 pkg:deb/ubuntu/libssl3@3.0.2-0ubuntu1.6?distro=ubuntu-22.04 3.0.2-0ubuntu1.7",
			},
		},
		{
			file: "balenalib-armv7hf-alpine-node.alpine-3.16.1.trivy.spdx.json",
			read: readSPDX,
			// npm tar 6.1.11 is past 6.1.9; GNU tar is another ecosystem.
			want: []string{
				"ALPINE-CVE-2025-26519 pkg:apk/alpine/musl-utils@1.2.3-r0?distro=3.16.1 1.2.3-r4",
				"ALPINE-CVE-2025-26519 pkg:apk/alpine/musl@1.2.3-r0?distro=3.16.1 1.2.3-r4",
			},
		},
		{
			file: "mongo.ubuntu-20.04.syft.cdx.json",
			read: readCycloneDX,
			// openssl 1.1.1f is below USN-5710-1's fix but that record covers
			// 22.04 only; USN-5570-1 has no 20.04 entry; golang.org/x/sys
			// v0.0.0-20220520… is after GO-2022-0493's fix.
			want: []string{
				"USN-5702-1 pkg:deb/ubuntu/libcurl4@7.68.0-1ubuntu2.13?arch=amd64&upstream=curl&distro=ubuntu-20.04 7.68.0-1ubuntu2.14",
			},
		},
	} {
		t.Run(c.file, func(t *testing.T) {
			comps := c.read(t, filepath.Join(sbomDir, c.file))
			got := map[string]bool{}
			checked := 0
			for _, comp := range comps {
				pkgs, err := PackagesFromPurl(comp.purl, comp.distro, comp.sourceName, comp.sourceVersion)
				if err != nil {
					t.Fatalf("%+v: %v", comp, err)
				}
				for _, p := range pkgs {
					checked++
					for _, r := range recs {
						if m, ok := r.Affects(p); ok {
							got[r.ID+" "+comp.purl+" "+m.Fixed] = true
						}
					}
				}
			}
			if checked < 100 {
				t.Fatalf("only %d packages came out of %d components", checked, len(comps))
			}
			var gotList []string
			for k := range got {
				gotList = append(gotList, k)
			}
			slices.Sort(gotList)
			want := slices.Sorted(slices.Values(c.want))
			if !slices.Equal(gotList, want) {
				t.Errorf("matches:\n%s\nwant:\n%s", strings.Join(gotList, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// The mongo image's Go tools were built with go1.17.10, the first release
// with GO-2022-0493's fix: a near miss for the standard library.
func TestSBOMGoToolchain(t *testing.T) {
	recs := loadRecords(t)
	var doc struct {
		Components []struct {
			Properties []struct {
				Name  string `json:"name"`
				Value string `json:"value"`
			} `json:"properties"`
		} `json:"components"`
	}
	readJSON(t, filepath.Join(corpusDir(t), "sbom", "mongo.ubuntu-20.04.syft.cdx.json"), &doc)
	toolchains := map[string]bool{}
	for _, c := range doc.Components {
		for _, p := range c.Properties {
			if p.Name == "syft:metadata:goCompiledVersion" {
				toolchains[strings.TrimPrefix(p.Value, "go")] = true
			}
		}
	}
	if !toolchains["1.17.10"] || len(toolchains) != 1 {
		t.Fatalf("toolchains = %v, want only 1.17.10", toolchains)
	}
	if m, ok := recs["GO-2022-0493"].Affects(Package{Ecosystem: "Go", Name: "stdlib", Version: "1.17.10"}); ok {
		t.Errorf("stdlib 1.17.10 matched GO-2022-0493: %+v", m)
	}
}
