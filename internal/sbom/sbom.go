// Package sbom reads software bills of materials (CycloneDX JSON and SPDX
// JSON 2.x) into one flat list of components — canonical purl, source
// package, distro release, licenses — which is what vulnerability matching
// needs. SBOMs from the wild are messy: a bad entry becomes a warning, only a
// document that is not an SBOM at all is an error.
package sbom

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	"github.com/package-url/packageurl-go"
)

// Formats of a Document.
const (
	FormatCycloneDX = "cyclonedx"
	FormatSPDX      = "spdx"
)

// MaxComponents bounds the component entries one SBOM may list; the largest
// container SBOMs hold tens of thousands.
const MaxComponents = 200_000

// maxWarnings bounds Document.Warnings so a file full of bad entries cannot
// grow the result without limit.
const maxWarnings = 100

// Sentinel errors; returned errors wrap them with context, so test with errors.Is.
var (
	ErrTooLarge    = errors.New("sbom: too large")
	ErrUnsupported = errors.New("unsupported: send CycloneDX JSON or SPDX JSON")
)

// Component is one package the SBOM lists.
type Component struct {
	Name    string
	Version string
	// Purl is the canonical package URL (packageurl-go's ToString of the
	// parsed purl), carrying the version; "" when the SBOM gave none or an
	// invalid one.
	Purl string
	// Type is the purl type: deb, apk, golang, npm, generic, …; "" without a purl.
	Type string
	// SourceName and SourceVersion name the source package a binary package
	// was built from (Debian/Ubuntu source, Alpine origin) where the SBOM
	// says so, else "" — consumers then fall back to Name and Version.
	SourceName    string
	SourceVersion string
	// Distro is the release the package belongs to, lowercase
	// "<os>-<version>" ("debian-9.5", "ubuntu-22.04", "alpine-3.16.1"), from
	// the purl's distro qualifier or else the SBOM's operating system.
	Distro string
	// Licenses are the licenses the SBOM states: SPDX ids or expressions,
	// or names where the tool gave no id.
	Licenses []string
}

// OS is the operating system an SBOM describes, lowercase: Name "debian",
// "ubuntu", "alpine", …; Version "9.5", "22.04", "3.16.1".
type OS struct {
	Name    string
	Version string
}

// Distro returns the "<name>-<version>" form Component.Distro uses.
func (o OS) Distro() string { return o.Name + "-" + o.Version }

// Document is a parsed SBOM.
type Document struct {
	Format      string // FormatCycloneDX or FormatSPDX
	SpecVersion string // "1.4", "2.3", …
	Name        string // what the SBOM describes: the SPDX document name, the CycloneDX metadata component
	// Components excludes the operating system itself (see OS) and holds
	// each purl once.
	Components []Component
	// OS is the operating system from the SBOM's OS component, or else the
	// one distro all components' purls agree on; nil when unknown.
	OS *OS
	// Warnings describe entries kept in degraded form (an invalid purl is
	// dropped, the component kept) or skipped; at most 100, the last then
	// counting those not shown.
	Warnings []string
}

// Parse reads one SBOM of at most maxBytes bytes (ErrTooLarge beyond),
// detecting the format from the content: CycloneDX JSON (bomFormat
// "CycloneDX") or SPDX JSON 2.1–2.3 (spdxVersion). Other formats yield
// ErrUnsupported.
func Parse(r io.Reader, maxBytes int64) (*Document, error) {
	if maxBytes <= 0 {
		return nil, fmt.Errorf("sbom: maxBytes is %d, want a positive limit", maxBytes)
	}
	limit := maxBytes
	if limit < math.MaxInt64 {
		limit++ // one byte more tells "exactly maxBytes" from "larger"
	}
	data, err := io.ReadAll(io.LimitReader(r, limit))
	if err != nil {
		return nil, fmt.Errorf("sbom: reading: %w", err)
	}
	if int64(len(data)) > maxBytes {
		return nil, fmt.Errorf("%w: over the limit of %d bytes", ErrTooLarge, maxBytes)
	}
	// Some Windows tools write a UTF-8 byte order mark, which encoding/json rejects.
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	format, spdxVersion, err := detect(data)
	if err != nil {
		return nil, err
	}
	if format == FormatCycloneDX {
		return parseCycloneDX(data)
	}
	return parseSPDX(data, spdxVersion)
}

// detect tells the format from the content, naming what it found when that
// is not a supported SBOM. For SPDX it returns the raw spdxVersion too.
func detect(data []byte) (format string, spdxVersion json.RawMessage, err error) {
	trimmed := bytes.TrimSpace(data)
	switch {
	case len(trimmed) == 0:
		return "", nil, errors.New("sbom: the document is empty")
	case trimmed[0] == '<':
		what := "XML"
		if bytes.Contains(trimmed, []byte("cyclonedx.org")) {
			what = "CycloneDX XML"
		} else if bytes.Contains(trimmed, []byte("spdx.org")) {
			what = "SPDX RDF/XML"
		}
		return "", nil, fmt.Errorf("sbom: %s is %w", what, ErrUnsupported)
	case trimmed[0] != '{':
		if bytes.HasPrefix(trimmed, []byte("SPDXVersion:")) || bytes.Contains(trimmed, []byte("\nSPDXVersion:")) {
			return "", nil, fmt.Errorf("sbom: SPDX tag-value is %w", ErrUnsupported)
		}
		var v any
		if err := json.Unmarshal(trimmed, &v); err != nil {
			return "", nil, fmt.Errorf("sbom: not valid JSON (%v); %w", describeJSONError(data, err), ErrUnsupported)
		}
		return "", nil, fmt.Errorf("sbom: the top level is a JSON %s; want an object (a CycloneDX or SPDX document)", jsonKind(trimmed[0]))
	}
	var head struct {
		BOMFormat   json.RawMessage `json:"bomFormat"`
		SPDXVersion json.RawMessage `json:"spdxVersion"`
		Context     json.RawMessage `json:"@context"`
	}
	if err := json.Unmarshal(trimmed, &head); err != nil {
		return "", nil, fmt.Errorf("sbom: not valid JSON: %v", describeJSONError(data, err))
	}
	switch {
	case head.BOMFormat != nil && head.SPDXVersion != nil:
		return "", nil, errors.New("sbom: the document has both bomFormat (CycloneDX) and spdxVersion (SPDX); send one format")
	case head.BOMFormat != nil:
		var f string
		if json.Unmarshal(head.BOMFormat, &f) != nil || f != "CycloneDX" {
			return "", nil, fmt.Errorf("sbom: bomFormat is %s, want \"CycloneDX\"", clip(string(head.BOMFormat)))
		}
		return FormatCycloneDX, nil, nil
	case head.SPDXVersion != nil:
		return FormatSPDX, head.SPDXVersion, nil
	case bytes.Contains(head.Context, []byte("spdx")):
		return "", nil, fmt.Errorf("sbom: SPDX 3 JSON-LD is %w (SPDX 2.x)", ErrUnsupported)
	}
	return "", nil, fmt.Errorf("sbom: the JSON object has neither bomFormat (CycloneDX) nor spdxVersion (SPDX); %w", ErrUnsupported)
}

// describeJSONError adds where a syntax error is, counted in data (before
// trimming), so the sender can find it in the file.
func describeJSONError(data []byte, err error) string {
	var syn *json.SyntaxError
	if !errors.As(err, &syn) {
		return err.Error()
	}
	lead := len(data) - len(bytes.TrimLeft(data, " \t\r\n"))
	return fmt.Sprintf("%v, after %d bytes", err, int64(lead)+syn.Offset)
}

func jsonKind(first byte) string {
	switch first {
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}

// entry is one component as the SBOM states it, before normalization.
type entry struct {
	name, version string
	purls         []string // candidates in the SBOM's order; the first valid one wins
	licenses      []string
	src           source // from tool-specific fields
}

type source struct{ name, version string }

// builder normalizes entries into a Document.
type builder struct {
	doc     *Document
	seen    map[string]bool // canonical purls already in doc.Components
	entries int             // entries seen, against MaxComponents
	dropped int             // warnings beyond maxWarnings
}

func newBuilder(format, specVersion, name string, os *OS) *builder {
	return &builder{
		doc:  &Document{Format: format, SpecVersion: specVersion, Name: name, OS: os, Components: []Component{}},
		seen: map[string]bool{},
	}
}

func (b *builder) warn(format string, args ...any) {
	if len(b.doc.Warnings) < maxWarnings-1 {
		b.doc.Warnings = append(b.doc.Warnings, fmt.Sprintf(format, args...))
		return
	}
	b.dropped++
}

// count charges one entry against MaxComponents.
func (b *builder) count() error {
	b.entries++
	if b.entries > MaxComponents {
		return fmt.Errorf("sbom: more than %d components; split the SBOM", MaxComponents)
	}
	return nil
}

func (b *builder) add(e entry) {
	c := Component{Name: strings.TrimSpace(e.name), Version: strings.TrimSpace(e.version)}
	var p packageurl.PackageURL
	for _, s := range e.purls {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		canon, parsed, err := canonicalPurl(s, c.Version)
		if err != nil {
			b.warn("component %q %q: invalid purl %q ignored (%v)", clip(c.Name), clip(c.Version), clip(s), err)
			continue
		}
		c.Purl, p = canon, parsed
		break
	}
	if c.Purl != "" {
		if b.seen[c.Purl] {
			return
		}
		b.seen[c.Purl] = true
		c.Type = p.Type
		if c.Name == "" {
			c.Name = p.Name
		}
		if c.Version == "" {
			c.Version = p.Version
		}
		c.Distro = normalizeDistro(qualifier(p, "distro"), p.Namespace)
		if c.Distro == "" && b.doc.OS != nil && b.doc.OS.Version != "" && isOSPackage(p.Type) && p.Namespace == b.doc.OS.Name {
			c.Distro = b.doc.OS.Distro()
		}
	} else if c.Name == "" {
		b.warn("a component with neither name nor purl was skipped")
		return
	}
	src := e.src
	if isOSPackage(c.Type) {
		// syft writes upstream=<source>[@<version>] on deb and apk purls;
		// elsewhere the qualifier has other meanings (rpm: a .src.rpm file).
		up := source{}
		up.name, up.version, _ = strings.Cut(qualifier(p, "upstream"), "@")
		if src.name == "" {
			src = up
		} else if src.version == "" && up.name == src.name {
			src.version = up.version
		}
		if src.name != "" && src.version == "" {
			// dpkg omits the source version when it equals the binary's;
			// an apk origin is always built at the package's version.
			src.version = c.Version
		}
	}
	if src.name != "" {
		c.SourceName, c.SourceVersion = src.name, src.version
	}
	for _, l := range e.licenses {
		c.Licenses = addLicenses(c.Licenses, l)
	}
	b.doc.Components = append(b.doc.Components, c)
}

// finish fills OS from the components when the SBOM named none and closes
// the warnings.
func (b *builder) finish() *Document {
	if b.doc.OS == nil {
		distro := ""
		for _, c := range b.doc.Components {
			if c.Distro == "" {
				continue
			}
			if distro != "" && c.Distro != distro {
				distro = "" // components disagree: no single OS to report
				break
			}
			distro = c.Distro
		}
		if i := strings.LastIndexByte(distro, '-'); i > 0 && i < len(distro)-1 {
			b.doc.OS = &OS{Name: distro[:i], Version: distro[i+1:]}
		}
	}
	if b.dropped > 0 {
		b.doc.Warnings = append(b.doc.Warnings, fmt.Sprintf("%d more warnings not shown", b.dropped))
	}
	return b.doc
}

// canonicalPurl parses s and returns its canonical string, adding version
// when the purl has none. A purl whose canonical form does not parse back to
// itself is refused, so every Component.Purl round-trips.
func canonicalPurl(s, version string) (string, packageurl.PackageURL, error) {
	p, err := packageurl.FromString(s)
	if err != nil {
		return "", p, err
	}
	if p.Version == "" {
		p.Version = version
	}
	canon := p.ToString()
	back, err := packageurl.FromString(canon)
	if err != nil || back.ToString() != canon {
		return "", p, errors.New("its canonical form does not parse back to itself")
	}
	return canon, back, nil
}

func qualifier(p packageurl.PackageURL, key string) string {
	for _, q := range p.Qualifiers {
		if q.Key == key {
			return q.Value
		}
	}
	return ""
}

// isOSPackage reports whether purl type typ is a distribution's package
// manager, whose packages belong to a distro release and a source package.
func isOSPackage(typ string) bool { return typ == "deb" || typ == "apk" }

// normalizeOS returns the lowercase OS, or nil without a name. Tools write
// ids ("ubuntu"), some a pretty name ("Alpine Linux"): keep the first word.
func normalizeOS(name, version string) *OS {
	fields := strings.Fields(strings.ToLower(name))
	if len(fields) == 0 {
		return nil
	}
	return &OS{Name: fields[0], Version: strings.ToLower(strings.TrimSpace(version))}
}

// normalizeDistro turns a purl distro qualifier into "<os>-<version>":
// trivy writes a bare version for Alpine ("3.16.1"), the purl spec's
// examples a Debian codename ("jessie").
func normalizeDistro(d, namespace string) string {
	d = strings.ToLower(strings.TrimSpace(d))
	if d == "" {
		return ""
	}
	if r, ok := codenames[d]; ok {
		return r
	}
	if name, code, ok := strings.Cut(d, "-"); ok {
		if r, ok := codenames[code]; ok && strings.HasPrefix(r, name+"-") {
			return r
		}
	}
	if d[0] >= '0' && d[0] <= '9' && namespace != "" {
		return strings.ToLower(namespace) + "-" + d
	}
	return d
}

// codenames maps Debian and Ubuntu release codenames to the numbered form
// the other tools write and advisories use.
var codenames = map[string]string{
	"wheezy": "debian-7", "jessie": "debian-8", "stretch": "debian-9", "buster": "debian-10",
	"bullseye": "debian-11", "bookworm": "debian-12", "trixie": "debian-13", "forky": "debian-14",
	"trusty": "ubuntu-14.04", "xenial": "ubuntu-16.04", "bionic": "ubuntu-18.04", "focal": "ubuntu-20.04",
	"jammy": "ubuntu-22.04", "kinetic": "ubuntu-22.10", "lunar": "ubuntu-23.04", "mantic": "ubuntu-23.10",
	"noble": "ubuntu-24.04", "oracular": "ubuntu-24.10", "plucky": "ubuntu-25.04", "questing": "ubuntu-25.10",
}

// addLicenses appends the licenses in s to ls, once each. Trivy joins
// several with ", " (a comma never occurs in an SPDX expression); NONE and
// NOASSERTION say there is nothing to record.
func addLicenses(ls []string, s string) []string {
	for _, l := range strings.Split(s, ",") {
		l = strings.TrimSpace(l)
		if l == "" || l == "NONE" || l == "NOASSERTION" || slices.Contains(ls, l) {
			continue
		}
		ls = append(ls, l)
	}
	return ls
}

// clip shortens s for an error or warning message.
func clip(s string) string {
	const limit = 80
	if len(s) > limit {
		return s[:limit] + "..."
	}
	return s
}
