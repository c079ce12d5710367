package sbom

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/package-url/packageurl-go"
)

// sharedSBOM reads one of the real SBOMs kept in the shared test data beside
// the repository (../shared/testdata/vulnmatch/sbom from the module root).
func sharedSBOM(t *testing.T, name string) []byte {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		if filepath.Dir(dir) == dir {
			t.Fatal("no go.mod above the test's directory: run the tests inside the module")
		}
		dir = filepath.Dir(dir)
	}
	b, err := os.ReadFile(filepath.Join(dir, "..", "shared", "testdata", "vulnmatch", "sbom", name))
	if err != nil {
		t.Fatalf("the shared test data is expected beside the repository, in ../shared/testdata/vulnmatch/sbom: %v", err)
	}
	return b
}

func parseString(t *testing.T, s string) *Document {
	t.Helper()
	doc, err := Parse(strings.NewReader(s), 1<<20)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return doc
}

func find(t *testing.T, doc *Document, name, version string) Component {
	t.Helper()
	var found []Component
	for _, c := range doc.Components {
		if c.Name == name && (version == "" || c.Version == version) {
			found = append(found, c)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d components named %q %q, want 1: %+v", len(found), name, version, found)
	}
	return found[0]
}

// checkInvariants asserts what every accepted document promises.
func checkInvariants(t *testing.T, doc *Document) {
	t.Helper()
	if doc.Format != FormatCycloneDX && doc.Format != FormatSPDX {
		t.Fatalf("format %q", doc.Format)
	}
	if len(doc.Components) > MaxComponents || len(doc.Warnings) > maxWarnings {
		t.Fatalf("%d components, %d warnings: over the bounds", len(doc.Components), len(doc.Warnings))
	}
	seen := map[string]bool{}
	for _, c := range doc.Components {
		if c.Purl == "" {
			if c.Type != "" {
				t.Fatalf("%+v: a type without a purl", c)
			}
			continue
		}
		if seen[c.Purl] {
			t.Fatalf("purl %q listed twice", c.Purl)
		}
		seen[c.Purl] = true
		p, err := packageurl.FromString(c.Purl)
		if err != nil {
			t.Fatalf("purl %q does not parse: %v", c.Purl, err)
		}
		if p.ToString() != c.Purl || p.Type != c.Type {
			t.Fatalf("purl %q re-parses as %q type %q, component type %q", c.Purl, p.ToString(), p.Type, c.Type)
		}
	}
}

func typeCounts(doc *Document) map[string]int {
	n := map[string]int{}
	for _, c := range doc.Components {
		n[c.Type]++
	}
	return n
}

func TestRealSBOMs(t *testing.T) {
	cases := []struct {
		file, format, spec, name string
		os                       OS
		types                    map[string]int // "" counts components without a purl
		want                     []Component    // compared whole, found by name and version
		withSource               int
	}{
		{
			file: "balenalib-armv7hf-alpine-node.alpine-3.16.1.trivy.spdx.json", format: FormatSPDX, spec: "2.2",
			name: "balenalib/armv7hf-alpine-node@sha256:2ce0427c71fbcca65da6f0b7e0b32671b3f932ee45f869477d1c6e5247eee9b7",
			os:   OS{"alpine", "3.16.1"},
			// 208 npm entries, 3 of them repeated; trivy's "node-pkg" grouping package has no purl.
			types: map[string]int{"apk": 68, "npm": 205, "oci": 1, "": 1},
			want: []Component{
				// trivy writes distro=3.16.1 without the OS name.
				{Name: "libssl1.1", Version: "1.1.1q-r0", Purl: "pkg:apk/alpine/libssl1.1@1.1.1q-r0?distro=3.16.1", Type: "apk",
					SourceName: "openssl", SourceVersion: "1.1.1q-r0", Distro: "alpine-3.16.1", Licenses: []string{"OpenSSL"}},
				{Name: "ssl_client", Version: "1.35.0-r15", Purl: "pkg:apk/alpine/ssl_client@1.35.0-r15?distro=3.16.1", Type: "apk",
					SourceName: "busybox", SourceVersion: "1.35.0-r15", Distro: "alpine-3.16.1", Licenses: []string{"GPL-2.0"}},
				{Name: "musl-utils", Version: "1.2.3-r0", Purl: "pkg:apk/alpine/musl-utils@1.2.3-r0?distro=3.16.1", Type: "apk",
					SourceName: "musl", SourceVersion: "1.2.3-r0", Distro: "alpine-3.16.1", Licenses: []string{"MIT", "BSD-3-Clause", "GPL-2.0"}},
				{Name: "minimatch", Version: "3.1.2", Purl: "pkg:npm/minimatch@3.1.2", Type: "npm", Licenses: []string{"ISC"}},
				{Name: "node-pkg"},
			},
			withSource: 68,
		},
		{
			file: "balenalib-beaglebone-black-ubuntu-node.ubuntu-22.04.trivy.spdx.json", format: FormatSPDX, spec: "2.2",
			name: "balenalib/beaglebone-black-ubuntu-node@sha256:a642025da75b7db95996040e46f2cc22cc5bdcf9d9dabc389a32fc1b86b75b15",
			os:   OS{"ubuntu", "22.04"},
			// 214 npm entries, 7 of them repeats.
			types: map[string]int{"deb": 158, "npm": 207, "oci": 1, "": 1},
			want: []Component{
				{Name: "libssl3", Version: "3.0.2-0ubuntu1.6", Purl: "pkg:deb/ubuntu/libssl3@3.0.2-0ubuntu1.6?distro=ubuntu-22.04", Type: "deb",
					SourceName: "openssl", SourceVersion: "3.0.2-0ubuntu1.6", Distro: "ubuntu-22.04", Licenses: []string{"Apache-2.0", "Artistic", "GPL-1.0"}},
				// openssl's licenseDeclared is NONE.
				{Name: "openssl", Version: "3.0.2-0ubuntu1.7", Purl: "pkg:deb/ubuntu/openssl@3.0.2-0ubuntu1.7?distro=ubuntu-22.04", Type: "deb",
					SourceName: "openssl", SourceVersion: "3.0.2-0ubuntu1.7", Distro: "ubuntu-22.04"},
				// The epoch belongs to the binary package only: util-linux has none.
				{Name: "bsdutils", Version: "1:2.37.2-4ubuntu3", Purl: "pkg:deb/ubuntu/bsdutils@1:2.37.2-4ubuntu3?distro=ubuntu-22.04", Type: "deb",
					SourceName: "util-linux", SourceVersion: "2.37.2-4ubuntu3", Distro: "ubuntu-22.04",
					Licenses: []string{"GPL-2.0", "GPL-3.0", "public-domain", "BSD-4-Clause", "MIT", "BSD-2-Clause", "BSD-3-Clause", "LGPL-2.0", "LGPL-2.1", "LGPL-3.0"}},
				{Name: "zlib1g", Version: "1:1.2.11.dfsg-2ubuntu9.2", Purl: "pkg:deb/ubuntu/zlib1g@1:1.2.11.dfsg-2ubuntu9.2?distro=ubuntu-22.04", Type: "deb",
					SourceName: "zlib", SourceVersion: "1:1.2.11.dfsg-2ubuntu9.2", Distro: "ubuntu-22.04", Licenses: []string{"Zlib"}},
			},
			withSource: 158,
		},
		{
			file: "ibmcom-mb-jenkins-slave.debian-9.5.trivy.spdx.json", format: FormatSPDX, spec: "2.2",
			name:  "ibmcom/mb-jenkins-slave@sha256:9dda5baf92cdb71b82b6cf3d55bbc591938f9e7fc63b8dcb4b6cf98e712c75a6",
			os:    OS{"debian", "9.5"},
			types: map[string]int{"deb": 295, "maven": 3, "oci": 1, "": 1},
			want: []Component{
				// The canonical purl percent-encodes '+'.
				{Name: "libssl1.1", Version: "1.1.0f-3+deb9u2", Purl: "pkg:deb/debian/libssl1.1@1.1.0f-3%2Bdeb9u2?distro=debian-9.5", Type: "deb",
					SourceName: "openssl", SourceVersion: "1.1.0f-3+deb9u2", Distro: "debian-9.5", Licenses: []string{"OpenSSL"}},
				{Name: "libssl1.0.2", Version: "1.0.2l-2+deb9u3", Purl: "pkg:deb/debian/libssl1.0.2@1.0.2l-2%2Bdeb9u3?distro=debian-9.5", Type: "deb",
					SourceName: "openssl1.0", SourceVersion: "1.0.2l-2+deb9u3", Distro: "debian-9.5", Licenses: []string{"OpenSSL"}},
				// A binNMU (+b3): the source version lacks the suffix. Its licenses are NONE.
				{Name: "libsm6", Version: "2:1.2.2-1+b3", Purl: "pkg:deb/debian/libsm6@2:1.2.2-1%2Bb3?distro=debian-9.5", Type: "deb",
					SourceName: "libsm", SourceVersion: "2:1.2.2-1", Distro: "debian-9.5"},
				{Name: "org.jenkins-ci.main:remoting", Version: "3.27", Purl: "pkg:maven/org.jenkins-ci.main/remoting@3.27", Type: "maven"},
			},
			withSource: 295,
		},
		{
			file: "mongo.ubuntu-20.04.syft.cdx.json", format: FormatCycloneDX, spec: "1.4",
			name: "docker.io/library/mongo",
			os:   OS{"ubuntu", "20.04"},
			// 139 golang entries are 20 modules repeated across binaries; the
			// operating-system component is Document.OS.
			types: map[string]int{"deb": 153, "golang": 20},
			want: []Component{
				// upstream=openssl without a version: the source version is the binary's.
				{Name: "libssl1.1", Version: "1.1.1f-1ubuntu2.16", Purl: "pkg:deb/ubuntu/libssl1.1@1.1.1f-1ubuntu2.16?arch=amd64&distro=ubuntu-20.04&upstream=openssl",
					Type: "deb", SourceName: "openssl", SourceVersion: "1.1.1f-1ubuntu2.16", Distro: "ubuntu-20.04"},
				{Name: "bsdutils", Version: "1:2.34-0.1ubuntu9.3", Purl: "pkg:deb/ubuntu/bsdutils@1:2.34-0.1ubuntu9.3?arch=amd64&distro=ubuntu-20.04&upstream=util-linux%402.34-0.1ubuntu9.3",
					Type: "deb", SourceName: "util-linux", SourceVersion: "2.34-0.1ubuntu9.3", Distro: "ubuntu-20.04",
					Licenses: []string{"BSD-2-Clause", "BSD-3-Clause", "BSD-4-Clause", "GPL-2.0-only", "GPL-2.0-or-later", "GPL-3.0-only", "GPL-3.0-or-later",
						"LGPL-2.0-only", "LGPL-2.0-or-later", "LGPL-2.1-only", "LGPL-2.1+", "LGPL-3.0-only", "LGPL-3.0-or-later", "MIT"}},
				// No Source field in dpkg: syft writes no upstream, and neither do we.
				{Name: "openssl", Version: "1.1.1f-1ubuntu2.16", Purl: "pkg:deb/ubuntu/openssl@1.1.1f-1ubuntu2.16?arch=amd64&distro=ubuntu-20.04",
					Type: "deb", Distro: "ubuntu-20.04"},
				{Name: "github.com/mongodb/mongo-tools", Version: "(devel)", Purl: "pkg:golang/github.com/mongodb/mongo-tools@%28devel%29", Type: "golang"},
			},
			withSource: 117,
		},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			doc, err := Parse(bytes.NewReader(sharedSBOM(t, c.file)), 64<<20)
			if err != nil {
				t.Fatal(err)
			}
			checkInvariants(t, doc)
			if doc.Format != c.format || doc.SpecVersion != c.spec || doc.Name != c.name {
				t.Errorf("format %q %q name %q, want %q %q %q", doc.Format, doc.SpecVersion, doc.Name, c.format, c.spec, c.name)
			}
			if doc.OS == nil || *doc.OS != c.os {
				t.Errorf("OS %+v, want %+v", doc.OS, c.os)
			}
			if got := typeCounts(doc); !reflect.DeepEqual(got, c.types) {
				t.Errorf("components by purl type %v, want %v", got, c.types)
			}
			if len(doc.Warnings) != 0 {
				t.Errorf("warnings %q", doc.Warnings)
			}
			withSource := 0
			for _, comp := range doc.Components {
				if comp.SourceName != "" {
					withSource++
				}
				if (comp.Type == "deb" || comp.Type == "apk") != (comp.Distro != "") {
					t.Errorf("%s: distro %q", comp.Purl, comp.Distro)
				}
				if comp.Distro != "" && comp.Distro != doc.OS.Distro() {
					t.Errorf("%s: distro %q, the OS is %q", comp.Purl, comp.Distro, doc.OS.Distro())
				}
			}
			if withSource != c.withSource {
				t.Errorf("%d components with a source package, want %d", withSource, c.withSource)
			}
			for _, w := range c.want {
				if got := find(t, doc, w.Name, w.Version); !reflect.DeepEqual(got, w) {
					t.Errorf("got  %+v\nwant %+v", got, w)
				}
			}
		})
	}
}

func TestRejects(t *testing.T) {
	cases := []struct {
		name, in    string
		unsupported bool   // errors.Is ErrUnsupported
		says        string // a fragment the message must contain
	}{
		{"CycloneDX XML", `<?xml version="1.0"?><bom xmlns="http://cyclonedx.org/schema/bom/1.4" version="1"/>`, true, "CycloneDX XML is unsupported: send CycloneDX JSON or SPDX JSON"},
		{"SPDX RDF", `<rdf:RDF xmlns:spdx="http://spdx.org/rdf/terms#"></rdf:RDF>`, true, "SPDX RDF/XML"},
		{"SPDX tag-value", "SPDXVersion: SPDX-2.3\nDataLicense: CC0-1.0\n", true, "SPDX tag-value is unsupported"},
		{"SPDX tag-value after a comment", "## made by hand\nSPDXVersion: SPDX-2.2\n", true, "SPDX tag-value"},
		{"SPDX 3", `{"@context":"https://spdx.org/rdf/3.0.1/spdx-context.jsonld","@graph":[]}`, true, "SPDX 3"},
		{"SPDX 1.2", `{"spdxVersion":"SPDX-1.2"}`, true, `spdxVersion "SPDX-1.2" is unsupported`},
		{"not JSON", "name: x\nversion: 1\n", true, "not valid JSON"},
		{"other JSON", `{"name":"x"}`, true, "neither bomFormat (CycloneDX) nor spdxVersion (SPDX)"},
		{"empty", " \n", false, "empty"},
		{"truncated", `{"bomFormat":"CycloneDX","specVersion":"1.4","components":[`, false, "not valid JSON: unexpected end of JSON input"},
		{"syntax", "\n{\"bomFormat\" \"CycloneDX\"}", false, "not valid JSON: invalid character '\"' after object key, after 15 bytes"},
		{"array", `[{"bomFormat":"CycloneDX"}]`, false, "top level is a JSON array"},
		{"both formats", `{"bomFormat":"CycloneDX","spdxVersion":"SPDX-2.3"}`, false, "both bomFormat"},
		{"bomFormat", `{"bomFormat":"SPDX"}`, false, `bomFormat is "SPDX", want "CycloneDX"`},
		{"no specVersion", `{"bomFormat":"CycloneDX"}`, false, "no specVersion"},
		{"bad specVersion", `{"bomFormat":"CycloneDX","specVersion":"9.9"}`, false, "specVersion is not a CycloneDX version"},
		{"components shape", `{"bomFormat":"CycloneDX","specVersion":"1.4","components":{"name":"x"}}`, false, "CycloneDX JSON: json: cannot unmarshal object"},
		{"null package", `{"spdxVersion":"SPDX-2.2","SPDXID":"SPDXRef-DOCUMENT","packages":[null]}`, false, "SPDX JSON: malformed document"},
		{"packages shape", `{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT","packages":"x"}`, false, "SPDX JSON: json: cannot unmarshal string"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			doc, err := Parse(strings.NewReader(c.in), 1<<20)
			if err == nil {
				t.Fatalf("accepted: %+v", doc)
			}
			if errors.Is(err, ErrUnsupported) != c.unsupported || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("error %q: want unsupported=%v, saying %q", err, c.unsupported, c.says)
			}
		})
	}
}

func TestSizeLimit(t *testing.T) {
	b := sharedSBOM(t, "mongo.ubuntu-20.04.syft.cdx.json")
	if _, err := Parse(bytes.NewReader(b), int64(len(b))); err != nil {
		t.Fatalf("exactly at the limit: %v", err)
	}
	_, err := Parse(bytes.NewReader(b), int64(len(b))-1)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("one byte over: %v, want ErrTooLarge", err)
	}
	if _, err := Parse(bytes.NewReader(b), 0); err == nil || !strings.Contains(err.Error(), "positive") {
		t.Fatalf("zero limit: %v", err)
	}
}

func TestMessyEntries(t *testing.T) {
	doc := parseString(t, `{"bomFormat":"CycloneDX","specVersion":"1.5","metadata":{"component":{"type":"firmware","name":"gw-100",
	  "components":[{"type":"library","name":"busybox","version":"1.36.1","purl":"pkg:generic/busybox@1.36.1"}]}},
	 "components":[
	  {"type":"library","name":"curl","version":"7.50.3-1","purl":"pkg:deb/debian/curl@7.50.3-1?arch=i386&distro=jessie"},
	  {"type":"library","name":"curl","version":"7.50.3-1","purl":"pkg:deb/debian/curl@7.50.3-1?distro=jessie&arch=i386"},
	  {"type":"library","name":"left-pad","version":"1.3.0","purl":"pkg:npm/left-pad","licenses":[{"expression":"MIT OR Apache-2.0"}]},
	  {"type":"library","name":"bad","version":"1","purl":"not-a-purl"},
	  {"type":"library","name":"vendor-blob","version":"2.0","licenses":[{"license":{"name":"Proprietary"}}]},
	  {"type":"library","version":"3"},
	  {"type":"application","name":"agent","version":"1.2","purl":"pkg:golang/example.com/agent@v1.2.0",
	   "components":[{"type":"library","name":"x/net","purl":"pkg:golang/golang.org/x/net@v0.1.0"}]}
	 ]}`)
	checkInvariants(t, doc)
	want := []Component{
		{Name: "busybox", Version: "1.36.1", Purl: "pkg:generic/busybox@1.36.1", Type: "generic"},
		// The duplicate with reordered qualifiers is dropped; the codename becomes a release.
		{Name: "curl", Version: "7.50.3-1", Purl: "pkg:deb/debian/curl@7.50.3-1?arch=i386&distro=jessie", Type: "deb", Distro: "debian-8"},
		// The purl lacked the version the component states.
		{Name: "left-pad", Version: "1.3.0", Purl: "pkg:npm/left-pad@1.3.0", Type: "npm", Licenses: []string{"MIT OR Apache-2.0"}},
		{Name: "bad", Version: "1"},
		{Name: "vendor-blob", Version: "2.0", Licenses: []string{"Proprietary"}},
		{Name: "agent", Version: "1.2", Purl: "pkg:golang/example.com/agent@v1.2.0", Type: "golang"},
		{Name: "x/net", Version: "v0.1.0", Purl: "pkg:golang/golang.org/x/net@v0.1.0", Type: "golang"},
	}
	if !reflect.DeepEqual(doc.Components, want) {
		t.Fatalf("components\n%+v\nwant\n%+v", doc.Components, want)
	}
	if doc.Name != "gw-100" || doc.SpecVersion != "1.5" {
		t.Errorf("name %q spec %q", doc.Name, doc.SpecVersion)
	}
	// No OS component: the one distro the purls name.
	if doc.OS == nil || *doc.OS != (OS{"debian", "8"}) {
		t.Errorf("OS %+v", doc.OS)
	}
	if len(doc.Warnings) != 2 || !strings.Contains(doc.Warnings[0], `"bad" "1": invalid purl "not-a-purl"`) ||
		!strings.Contains(doc.Warnings[1], "neither name nor purl") {
		t.Errorf("warnings %q", doc.Warnings)
	}
}

func TestDisagreeingDistrosNameNoOS(t *testing.T) {
	doc := parseString(t, `{"bomFormat":"CycloneDX","specVersion":"1.4","components":[
	  {"type":"library","name":"a","version":"1","purl":"pkg:deb/debian/a@1?distro=debian-11"},
	  {"type":"library","name":"b","version":"1","purl":"pkg:deb/debian/b@1?distro=debian-12"}]}`)
	if doc.OS != nil {
		t.Fatalf("OS %+v from disagreeing purls", doc.OS)
	}
}

func TestWarningsAreBounded(t *testing.T) {
	var comps []string
	for i := range 150 {
		comps = append(comps, fmt.Sprintf(`{"type":"library","name":"c%d","version":"1","purl":"pkg:"}`, i))
	}
	doc := parseString(t, `{"bomFormat":"CycloneDX","specVersion":"1.4","components":[`+strings.Join(comps, ",")+`]}`)
	if len(doc.Components) != 150 {
		t.Fatalf("%d components kept, want all 150", len(doc.Components))
	}
	if len(doc.Warnings) != maxWarnings || doc.Warnings[maxWarnings-1] != "51 more warnings not shown" {
		t.Fatalf("%d warnings, last %q", len(doc.Warnings), doc.Warnings[len(doc.Warnings)-1])
	}
}

func TestTooManyComponents(t *testing.T) {
	t.Parallel() // seconds under -race: decoding 200,001 components
	var b strings.Builder
	b.WriteString(`{"bomFormat":"CycloneDX","specVersion":"1.4","components":[`)
	for i := range MaxComponents + 1 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"type":"library","name":"c"}`)
	}
	b.WriteString(`]}`)
	_, err := Parse(strings.NewReader(b.String()), 64<<20)
	if err == nil || !strings.Contains(err.Error(), "more than 200000 components") {
		t.Fatalf("error %v", err)
	}
}

func TestSPDX23(t *testing.T) {
	doc := parseString(t, `{"spdxVersion":"SPDX-2.3","dataLicense":"CC0-1.0","SPDXID":"SPDXRef-DOCUMENT","name":"gw-100 2.4.0",
	 "documentNamespace":"https://example.com/gw-100-2.4.0",
	 "creationInfo":{"created":"2025-01-01T00:00:00Z","creators":["Tool: hand"]},
	 "packages":[
	  {"SPDXID":"SPDXRef-os","name":"Debian GNU/Linux","versionInfo":"12","primaryPackagePurpose":"OPERATING-SYSTEM","downloadLocation":"NOASSERTION"},
	  {"SPDXID":"SPDXRef-libssl3","name":"libssl3","versionInfo":"3.0.15-1~deb12u1","downloadLocation":"NOASSERTION",
	   "licenseConcluded":"Apache-2.0","licenseDeclared":"NOASSERTION",
	   "externalRefs":[{"referenceCategory":"PACKAGE_MANAGER","referenceType":"purl","referenceLocator":"pkg:deb/debian/libssl3@3.0.15-1~deb12u1?arch=arm64&upstream=openssl"}]},
	  {"SPDXID":"SPDXRef-busybox","name":"busybox","versionInfo":"1.36.1","downloadLocation":"NOASSERTION",
	   "externalRefs":[{"referenceCategory":"SECURITY","referenceType":"cpe23Type","referenceLocator":"cpe:2.3:a:busybox:busybox:1.36.1:*:*:*:*:*:*:*"},
	    {"referenceCategory":"PACKAGE-MANAGER","referenceType":"purl","referenceLocator":"pkg:/"},
	    {"referenceCategory":"PACKAGE-MANAGER","referenceType":"purl","referenceLocator":"pkg:generic/busybox@1.36.1"}]}
	 ]}`)
	checkInvariants(t, doc)
	if doc.Format != FormatSPDX || doc.SpecVersion != "2.3" || doc.Name != "gw-100 2.4.0" {
		t.Errorf("document %q %q %q", doc.Format, doc.SpecVersion, doc.Name)
	}
	if doc.OS == nil || *doc.OS != (OS{"debian", "12"}) {
		t.Errorf("OS %+v", doc.OS)
	}
	want := []Component{
		// No distro qualifier: the release comes from the OS package.
		{Name: "libssl3", Version: "3.0.15-1~deb12u1", Purl: "pkg:deb/debian/libssl3@3.0.15-1~deb12u1?arch=arm64&upstream=openssl", Type: "deb",
			SourceName: "openssl", SourceVersion: "3.0.15-1~deb12u1", Distro: "debian-12", Licenses: []string{"Apache-2.0"}},
		{Name: "busybox", Version: "1.36.1", Purl: "pkg:generic/busybox@1.36.1", Type: "generic"},
	}
	if !reflect.DeepEqual(doc.Components, want) {
		t.Fatalf("components\n%+v\nwant\n%+v", doc.Components, want)
	}
	if len(doc.Warnings) != 1 || !strings.Contains(doc.Warnings[0], `invalid purl "pkg:/"`) {
		t.Errorf("warnings %q", doc.Warnings)
	}
}

func TestCycloneDXSourceProperties(t *testing.T) {
	doc := parseString(t, `{"bomFormat":"CycloneDX","specVersion":"1.6","components":[
	  {"type":"operating-system","name":"alpine","version":"3.20.3"},
	  {"type":"library","name":"libcrypto3","version":"3.3.2-r0","purl":"pkg:apk/alpine/libcrypto3@3.3.2-r0?arch=aarch64",
	   "properties":[{"name":"syft:metadata:originPackage","value":"openssl"}]},
	  {"type":"library","name":"libc6","version":"2.36-9+deb12u9","purl":"pkg:deb/debian/libc6@2.36-9%2Bdeb12u9?distro=debian-12.9",
	   "properties":[{"name":"aquasecurity:trivy:SrcName","value":"glibc"},{"name":"aquasecurity:trivy:SrcVersion","value":"2.36"},
	    {"name":"aquasecurity:trivy:SrcRelease","value":"9+deb12u9"}]},
	  {"type":"library","name":"bsdutils","version":"1:2.38.1-5+deb12u3","purl":"pkg:deb/debian/bsdutils@1:2.38.1-5%2Bdeb12u3?distro=debian-12.9",
	   "properties":[{"name":"aquasecurity:trivy:SrcName","value":"util-linux"},{"name":"aquasecurity:trivy:SrcVersion","value":"2.38.1"},
	    {"name":"aquasecurity:trivy:SrcRelease","value":"5+deb12u3"},{"name":"aquasecurity:trivy:SrcEpoch","value":"0"}]}
	 ]}`)
	checkInvariants(t, doc)
	got := map[string][3]string{}
	for _, c := range doc.Components {
		got[c.Name] = [3]string{c.SourceName, c.SourceVersion, c.Distro}
	}
	want := map[string][3]string{
		"libcrypto3": {"openssl", "3.3.2-r0", "alpine-3.20.3"},
		"libc6":      {"glibc", "2.36-9+deb12u9", "debian-12.9"},
		"bsdutils":   {"util-linux", "2.38.1-5+deb12u3", "debian-12.9"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("source, version, distro by name %v, want %v", got, want)
	}
	if doc.OS == nil || *doc.OS != (OS{"alpine", "3.20.3"}) {
		t.Errorf("OS %+v", doc.OS)
	}
}

func TestNormalizeDistro(t *testing.T) {
	cases := []struct{ in, namespace, want string }{
		{"debian-9.5", "debian", "debian-9.5"},
		{"Ubuntu-22.04", "ubuntu", "ubuntu-22.04"},
		{"3.16.1", "alpine", "alpine-3.16.1"},
		{"alpine-3.16.1", "alpine", "alpine-3.16.1"},
		{"jessie", "debian", "debian-8"},
		{"debian-bookworm", "debian", "debian-12"},
		{"ubuntu-jammy", "ubuntu", "ubuntu-22.04"},
		{"debian-jammy", "debian", "debian-jammy"}, // not a Debian codename: left alone
		{" ", "debian", ""},
	}
	for _, c := range cases {
		if got := normalizeDistro(c.in, c.namespace); got != c.want {
			t.Errorf("normalizeDistro(%q, %q) = %q, want %q", c.in, c.namespace, got, c.want)
		}
	}
}
