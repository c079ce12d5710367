package sbom

import (
	"encoding/json"
	"errors"
	"fmt"

	cdx "github.com/CycloneDX/cyclonedx-go"
)

func parseCycloneDX(data []byte) (*Document, error) {
	var bom cdx.BOM
	if err := json.Unmarshal(data, &bom); err != nil {
		if errors.Is(err, cdx.ErrInvalidSpecVersion) {
			return nil, errors.New("sbom: CycloneDX JSON: specVersion is not a CycloneDX version from 1.0 to 1.7")
		}
		return nil, fmt.Errorf("sbom: CycloneDX JSON: %v", err)
	}
	if bom.SpecVersion == 0 {
		return nil, errors.New("sbom: CycloneDX JSON has no specVersion")
	}
	var name string
	var os *OS
	var roots []cdx.Component
	if m := bom.Metadata; m != nil && m.Component != nil {
		// The metadata component is what the SBOM describes (here a
		// container image), not one of its parts; its children are.
		name = m.Component.Name
		if m.Component.Type == cdx.ComponentTypeOS {
			os = normalizeOS(m.Component.Name, m.Component.Version)
		}
		if m.Component.Components != nil {
			roots = append(roots, *m.Component.Components...)
		}
	}
	if bom.Components != nil {
		roots = append(roots, *bom.Components...)
	}
	if os == nil {
		os = findCycloneDXOS(roots)
	}
	b := newBuilder(FormatCycloneDX, bom.SpecVersion.String(), name, os)
	if err := b.addCycloneDX(roots); err != nil {
		return nil, err
	}
	return b.finish(), nil
}

// findCycloneDXOS returns the first operating-system component (syft and
// trivy list one beside the packages).
func findCycloneDXOS(cs []cdx.Component) *OS {
	for i := range cs {
		c := &cs[i]
		if c.Type == cdx.ComponentTypeOS {
			if os := normalizeOS(c.Name, c.Version); os != nil {
				return os
			}
		}
		if c.Components != nil {
			if os := findCycloneDXOS(*c.Components); os != nil {
				return os
			}
		}
	}
	return nil
}

// addCycloneDX adds cs and their nested components, depth first. The
// operating system itself is Document.OS, not a component.
func (b *builder) addCycloneDX(cs []cdx.Component) error {
	for i := range cs {
		c := &cs[i]
		if err := b.count(); err != nil {
			return err
		}
		if c.Type != cdx.ComponentTypeOS {
			e := entry{name: c.Name, version: c.Version, purls: []string{c.PackageURL}, src: cycloneDXSource(c.Properties)}
			if c.Licenses != nil {
				for _, l := range *c.Licenses {
					if l.License != nil && l.License.ID != "" {
						e.licenses = append(e.licenses, l.License.ID)
					} else if l.License != nil {
						e.licenses = append(e.licenses, l.License.Name)
					}
					e.licenses = append(e.licenses, l.Expression)
				}
			}
			b.add(e)
		}
		if c.Components != nil {
			if err := b.addCycloneDX(*c.Components); err != nil {
				return err
			}
		}
	}
	return nil
}

// cycloneDXSource reads the source package from the properties syft
// (syft:metadata:source, sourceVersion; originPackage for apk) and trivy
// (aquasecurity:trivy:SrcName, SrcVersion, SrcRelease, SrcEpoch) write.
func cycloneDXSource(props *[]cdx.Property) source {
	if props == nil {
		return source{}
	}
	var s source
	var trivyName, trivyVersion, trivyRelease, trivyEpoch string
	for _, p := range *props {
		switch p.Name {
		case "syft:metadata:source", "syft:metadata:originPackage":
			s.name = p.Value
		case "syft:metadata:sourceVersion":
			s.version = p.Value
		case "aquasecurity:trivy:SrcName":
			trivyName = p.Value
		case "aquasecurity:trivy:SrcVersion":
			trivyVersion = p.Value
		case "aquasecurity:trivy:SrcRelease":
			trivyRelease = p.Value
		case "aquasecurity:trivy:SrcEpoch":
			trivyEpoch = p.Value
		}
	}
	if s.name != "" || trivyName == "" {
		return s
	}
	// Trivy splits the source version as rpm does: [epoch:]version[-release].
	v := trivyVersion
	if v != "" && trivyRelease != "" {
		v += "-" + trivyRelease
	}
	if v != "" && trivyEpoch != "" && trivyEpoch != "0" {
		v = trivyEpoch + ":" + v
	}
	return source{name: trivyName, version: v}
}
