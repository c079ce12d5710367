package osv

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/package-url/packageurl-go"
)

// languageEcosystems maps purl types to OSV ecosystems.
var languageEcosystems = map[string]string{
	"golang": "Go", "npm": "npm", "pypi": "PyPI", "cargo": "crates.io", "gem": "RubyGems",
	"maven": "Maven", "nuget": "NuGet", "composer": "Packagist", "hex": "Hex", "pub": "Pub",
}

// nameSeparators joins a purl namespace to its name the way OSV names
// packages of these types; other types' namespaces are not part of the name.
var nameSeparators = map[string]string{"golang": "/", "npm": "/", "composer": "/", "maven": ":"}

// PackagesFromPurl turns an SBOM component into the packages to check
// against OSV records. It returns none for purl types without an OSV
// ecosystem (generic, oci, …).
//
// Distribution packages (deb, apk) are named by their source package, as
// OSV names them: sourceName and sourceVersion when given (from the SBOM),
// else the purl's "upstream" qualifier ("curl" or "openssl@1.1.1f-1"), else
// the binary package's own name and version. The release comes from distro
// ("debian-9.5", "ubuntu-22.04", "alpine-3.16.1"; a bare "3.16.1" for an
// apk purl), else the purl's "distro" qualifier: Debian 9.5 is "Debian:9",
// Alpine 3.16.1 "Alpine:v3.16", and an Ubuntu LTS release yields both
// "Ubuntu:22.04:LTS" and "Ubuntu:Pro:22.04:LTS", because fixes published
// after standard support (ESM) are recorded under Pro and a device on that
// release is affected whether or not it subscribes. The Pro FIPS streams are
// not included: their packages are different builds.
func PackagesFromPurl(purl, distro, sourceName, sourceVersion string) ([]Package, error) {
	p, err := packageurl.FromString(purl)
	if err != nil {
		return nil, fmt.Errorf("osv: purl %q: %w", purl, err)
	}
	if p.Type == "deb" || p.Type == "apk" {
		pkgs, err := distroPackages(p, purl, distro, sourceName, sourceVersion)
		if err != nil {
			return nil, fmt.Errorf("osv: purl %q: %w", purl, err)
		}
		return pkgs, nil
	}
	eco, ok := languageEcosystems[p.Type]
	if !ok {
		return nil, nil
	}
	if p.Version == "" {
		return nil, fmt.Errorf("osv: purl %q has no version", purl)
	}
	name := p.Name
	if sep, ok := nameSeparators[p.Type]; ok && p.Namespace != "" {
		name = p.Namespace + sep + p.Name
	}
	return []Package{{Ecosystem: eco, Name: name, Version: p.Version, Purl: purl}}, nil
}

func distroPackages(p packageurl.PackageURL, purl, distro, sourceName, sourceVersion string) ([]Package, error) {
	q := p.Qualifiers.Map()
	if distro == "" {
		distro = q["distro"]
	}
	if distro == "" {
		return nil, fmt.Errorf("no distribution release given")
	}
	id, release := splitDistro(distro)
	if id == "" {
		id = p.Namespace
	}
	if p.Namespace != "" && p.Namespace != id {
		return nil, fmt.Errorf("namespace %q does not match distribution %q", p.Namespace, distro)
	}
	ecosystems, err := distroEcosystems(p.Type, id, release)
	if err != nil {
		return nil, fmt.Errorf("distribution %q: %w", distro, err)
	}
	upName, upVersion, _ := strings.Cut(q["upstream"], "@")
	binVersion := p.Version
	if e := q["epoch"]; e != "" && binVersion != "" && !strings.Contains(binVersion, ":") {
		binVersion = e + ":" + binVersion
	}
	name := firstOf(sourceName, upName, p.Name)
	ver := firstOf(sourceVersion, upVersion, binVersion)
	if ver == "" {
		return nil, fmt.Errorf("no version")
	}
	pkgs := make([]Package, len(ecosystems))
	for i, eco := range ecosystems {
		pkgs[i] = Package{Ecosystem: eco, Name: name, Version: ver, Purl: purl}
	}
	return pkgs, nil
}

// splitDistro splits "debian-9.5" into its id and release; a bare release
// ("3.16.1", as trivy writes for Alpine) has no id.
func splitDistro(distro string) (id, release string) {
	distro = strings.ToLower(distro)
	if id, release, ok := strings.Cut(distro, "-"); ok {
		return id, release
	}
	if distro != "" && distro[0] >= '0' && distro[0] <= '9' {
		return "", distro
	}
	return distro, ""
}

func distroEcosystems(purlType, id, release string) ([]string, error) {
	parts := strings.Split(release, ".")
	for _, p := range parts {
		if _, err := strconv.ParseUint(p, 10, 32); err != nil {
			return nil, fmt.Errorf("release %q is not numeric", release)
		}
	}
	switch {
	case purlType == "deb" && id == "debian":
		return []string{"Debian:" + parts[0]}, nil
	case purlType == "deb" && id == "ubuntu" && len(parts) >= 2:
		r := parts[0] + "." + parts[1]
		if year, _ := strconv.Atoi(parts[0]); year%2 == 0 && parts[1] == "04" {
			return []string{"Ubuntu:" + r + ":LTS", "Ubuntu:Pro:" + r + ":LTS"}, nil
		}
		return []string{"Ubuntu:" + r}, nil
	case purlType == "apk" && id == "alpine" && len(parts) >= 2:
		return []string{"Alpine:v" + parts[0] + "." + parts[1]}, nil
	}
	return nil, fmt.Errorf("unsupported distribution or release for %s packages", purlType)
}

func firstOf(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
