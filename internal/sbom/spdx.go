package sbom

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx"
)

// spdxVersions are the SPDX JSON versions tools-golang reads.
var spdxVersions = map[string]string{"SPDX-2.1": "2.1", "SPDX-2.2": "2.2", "SPDX-2.3": "2.3"}

func parseSPDX(data []byte, rawVersion json.RawMessage) (*Document, error) {
	var v string
	_ = json.Unmarshal(rawVersion, &v) // a non-string is reported below
	version, ok := spdxVersions[v]
	if !ok {
		return nil, fmt.Errorf("sbom: spdxVersion %s is %w (SPDX-2.1 to SPDX-2.3)", clip(string(rawVersion)), ErrUnsupported)
	}
	doc, err := readSPDX(data)
	if err != nil {
		return nil, fmt.Errorf("sbom: SPDX JSON: %v", err)
	}
	var os *OS
	for _, p := range doc.Packages {
		if isSPDXOS(p) {
			if os = normalizeOS(p.PackageName, p.PackageVersion); os != nil {
				break
			}
		}
	}
	b := newBuilder(FormatSPDX, version, doc.DocumentName, os)
	for _, p := range doc.Packages {
		if p == nil {
			continue
		}
		if err := b.count(); err != nil {
			return nil, err
		}
		if isSPDXOS(p) {
			continue
		}
		e := entry{name: p.PackageName, version: p.PackageVersion, src: spdxSource(p.PackageSourceInfo)}
		for _, ref := range p.PackageExternalReferences {
			if ref != nil && strings.EqualFold(ref.RefType, "purl") {
				e.purls = append(e.purls, ref.Locator)
			}
		}
		// The declared license is what the package says; the concluded one
		// is a reviewer's (or tool's) finding, used when nothing was declared.
		lic := p.PackageLicenseDeclared
		if len(addLicenses(nil, lic)) == 0 {
			lic = p.PackageLicenseConcluded
		}
		e.licenses = []string{lic}
		b.add(e)
	}
	return b.finish(), nil
}

// readSPDX runs tools-golang, which panics on some malformed input (a null
// in "packages" dereferences nil); an upload must not crash the server.
func readSPDX(data []byte) (doc *spdx.Document, err error) {
	defer func() {
		if r := recover(); r != nil {
			doc, err = nil, fmt.Errorf("malformed document (the SPDX reader failed: %v); check for null entries", r)
		}
	}()
	return spdxjson.Read(bytes.NewReader(data))
}

// isSPDXOS reports whether p is the operating system: SPDX 2.3 says so with
// primaryPackagePurpose, trivy's SPDX 2.2 with the element id
// SPDXRef-OperatingSystem-….
func isSPDXOS(p *spdx.Package) bool {
	return p != nil && (p.PrimaryPackagePurpose == "OPERATING-SYSTEM" ||
		strings.HasPrefix(string(p.PackageSPDXIdentifier), "OperatingSystem-"))
}

// spdxSource reads trivy's "built package from: <name> <version>"; other
// sourceInfo texts are free prose.
func spdxSource(info string) source {
	rest, ok := strings.CutPrefix(strings.TrimSpace(info), "built package from:")
	if !ok {
		return source{}
	}
	f := strings.Fields(rest)
	switch len(f) {
	case 0:
		return source{}
	case 1:
		return source{name: f[0]}
	}
	return source{name: f[0], version: f[1]}
}
