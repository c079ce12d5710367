// Package osv reads OSV vulnerability records (schema 1.x) and decides
// whether a package version is affected, following the evaluation in the
// OSV specification: a version is affected when an affected entry names its
// ecosystem and package and the version is listed in versions[] or lies in
// one of the SEMVER or ECOSYSTEM ranges, ordered by the ecosystem's own
// rules (package version). It also evaluates purl "vers:" ranges and maps
// SBOM components (purls) to the ecosystem and source-package names that
// OSV records use.
package osv

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/steward-iot/steward/internal/vuln/version"
)

// Record is one OSV record.
type Record struct {
	SchemaVersion    string
	ID               string
	Modified         time.Time
	Published        time.Time // zero when absent
	Withdrawn        time.Time // zero unless the record was withdrawn
	Aliases          []string
	Related          []string
	Upstream         []string
	Summary          string
	Details          string
	Severity         []Severity
	Affected         []Affected
	References       []Reference
	DatabaseSpecific json.RawMessage
}

// Severity is a score of a given type, such as CVSS_V3 and its vector.
type Severity struct {
	Type  string `json:"type"`
	Score string `json:"score"`
}

// Reference is a typed link, such as ADVISORY or FIX.
type Reference struct {
	Type string `json:"type"`
	URL  string `json:"url"`
}

// Affected is one entry of affected[]: a package and the versions of it
// that have the vulnerability.
type Affected struct {
	Package           AffectedPackage
	Severity          []Severity
	Ranges            []AffectedRange
	Versions          []string
	EcosystemSpecific json.RawMessage
	DatabaseSpecific  json.RawMessage
}

// AffectedPackage names a package as OSV does; for distributions Name is
// the source package and Ecosystem carries the release ("Debian:9").
type AffectedPackage struct {
	Ecosystem string `json:"ecosystem"`
	Name      string `json:"name"`
	Purl      string `json:"purl"`
}

// Range types defined by the OSV schema.
const (
	RangeSemVer    = "SEMVER"
	RangeEcosystem = "ECOSYSTEM"
	RangeGit       = "GIT"
)

// AffectedRange is one entry of affected[].ranges[]. Only SEMVER and
// ECOSYSTEM ranges are evaluated; GIT ranges (commit hashes, which need the
// repository's history) and types from later schema versions are kept but
// never match.
type AffectedRange struct {
	Type             string
	Repo             string
	Events           []Event
	DatabaseSpecific json.RawMessage
}

// EventKind is the kind of an event in a range's timeline.
type EventKind string

// The event kinds of the OSV schema.
const (
	Introduced   EventKind = "introduced"
	Fixed        EventKind = "fixed"
	LastAffected EventKind = "last_affected"
	Limit        EventKind = "limit"
)

// Event is one status change in a range's timeline.
type Event struct {
	Kind    EventKind
	Version string
}

// wireRecord is the JSON shape; times stay strings so that a bad one is
// reported with its field name.
type wireRecord struct {
	SchemaVersion    string          `json:"schema_version"`
	ID               string          `json:"id"`
	Modified         string          `json:"modified"`
	Published        string          `json:"published"`
	Withdrawn        string          `json:"withdrawn"`
	Aliases          []string        `json:"aliases"`
	Related          []string        `json:"related"`
	Upstream         []string        `json:"upstream"`
	Summary          string          `json:"summary"`
	Details          string          `json:"details"`
	Severity         []Severity      `json:"severity"`
	Affected         []wireAffected  `json:"affected"`
	References       []Reference     `json:"references"`
	DatabaseSpecific json.RawMessage `json:"database_specific"`
}

type wireAffected struct {
	Package           *AffectedPackage `json:"package"`
	Severity          []Severity       `json:"severity"`
	Ranges            []wireRange      `json:"ranges"`
	Versions          []string         `json:"versions"`
	EcosystemSpecific json.RawMessage  `json:"ecosystem_specific"`
	DatabaseSpecific  json.RawMessage  `json:"database_specific"`
}

type wireRange struct {
	Type             string          `json:"type"`
	Repo             string          `json:"repo"`
	Events           []wireEvent     `json:"events"`
	DatabaseSpecific json.RawMessage `json:"database_specific"`
}

type wireEvent struct {
	Introduced   *string `json:"introduced"`
	Fixed        *string `json:"fixed"`
	LastAffected *string `json:"last_affected"`
	Limit        *string `json:"limit"`
}

// Parse reads one OSV record of at most max bytes. Unknown fields are
// ignored, as the schema asks of clients reading newer minor versions. It
// rejects records it could only evaluate wrongly: no id or modified time,
// an affected entry without ecosystem and name, a range without a type or
// an introduced event, an event with zero or several kinds, fixed mixed
// with last_affected, or a version its ecosystem's ordering cannot read.
func Parse(r io.Reader, max int64) (*Record, error) {
	if max <= 0 {
		return nil, fmt.Errorf("osv: size limit %d is not positive", max)
	}
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, fmt.Errorf("osv: reading record: %w", err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("osv: record is larger than %d bytes", max)
	}
	var w wireRecord
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, fmt.Errorf("osv: decoding record: %w", err)
	}
	rec, err := w.record()
	if err != nil {
		if w.ID != "" {
			return nil, fmt.Errorf("osv: record %s: %w", w.ID, err)
		}
		return nil, fmt.Errorf("osv: %w", err)
	}
	return rec, nil
}

func (w *wireRecord) record() (*Record, error) {
	if strings.TrimSpace(w.ID) == "" {
		return nil, errors.New("record has no id")
	}
	rec := &Record{
		SchemaVersion:    w.SchemaVersion,
		ID:               w.ID,
		Aliases:          w.Aliases,
		Related:          w.Related,
		Upstream:         w.Upstream,
		Summary:          w.Summary,
		Details:          w.Details,
		Severity:         w.Severity,
		References:       w.References,
		DatabaseSpecific: w.DatabaseSpecific,
	}
	if w.Modified == "" {
		return nil, errors.New("modified is missing")
	}
	var err error
	for _, t := range []struct {
		name string
		in   string
		out  *time.Time
	}{
		{"modified", w.Modified, &rec.Modified},
		{"published", w.Published, &rec.Published},
		{"withdrawn", w.Withdrawn, &rec.Withdrawn},
	} {
		if t.in == "" {
			continue
		}
		if *t.out, err = time.Parse(time.RFC3339Nano, t.in); err != nil {
			return nil, fmt.Errorf("%s %q is not an RFC 3339 time", t.name, t.in)
		}
	}
	if err := checkSeverities(rec.Severity); err != nil {
		return nil, err
	}
	for i, wa := range w.Affected {
		a, err := wa.affected()
		if err != nil {
			return nil, fmt.Errorf("affected[%d]: %w", i, err)
		}
		rec.Affected = append(rec.Affected, a)
	}
	return rec, nil
}

func checkSeverities(ss []Severity) error {
	for i, s := range ss {
		if s.Type == "" || s.Score == "" {
			return fmt.Errorf("severity[%d] needs a type and a score", i)
		}
	}
	return nil
}

func (wa *wireAffected) affected() (Affected, error) {
	a := Affected{
		Severity:          wa.Severity,
		Versions:          wa.Versions,
		EcosystemSpecific: wa.EcosystemSpecific,
		DatabaseSpecific:  wa.DatabaseSpecific,
	}
	// Schema 1.7 lets an entry that only has GIT ranges omit its package.
	if wa.Package != nil {
		a.Package = *wa.Package
		if a.Package.Ecosystem == "" || a.Package.Name == "" {
			return a, errors.New("package needs an ecosystem and a name")
		}
	}
	if err := checkSeverities(a.Severity); err != nil {
		return a, err
	}
	for i, v := range a.Versions {
		if v == "" {
			return a, fmt.Errorf("versions[%d] is empty", i)
		}
	}
	for i, wr := range wa.Ranges {
		r, err := wr.affectedRange(a.Package.Ecosystem)
		if err != nil {
			return a, fmt.Errorf("ranges[%d]: %w", i, err)
		}
		a.Ranges = append(a.Ranges, r)
	}
	return a, nil
}

func (wr *wireRange) affectedRange(ecosystem string) (AffectedRange, error) {
	r := AffectedRange{Type: wr.Type, Repo: wr.Repo, DatabaseSpecific: wr.DatabaseSpecific}
	if r.Type == "" {
		return r, errors.New("range has no type")
	}
	if r.Type == RangeGit && r.Repo == "" {
		return r, errors.New("GIT range has no repo")
	}
	if r.Type == RangeEcosystem && ecosystem == "" {
		return r, errors.New("ECOSYSTEM range in an entry without a package")
	}
	scheme, ordered := r.scheme(ecosystem)
	kinds := map[EventKind]bool{}
	for i, we := range wr.Events {
		e, err := we.event()
		if err != nil {
			return r, fmt.Errorf("events[%d]: %w", i, err)
		}
		if ordered && !(e.Kind == Introduced && e.Version == "0") && !(e.Kind == Limit && strings.Contains(e.Version, "*")) {
			if err := version.Valid(scheme, e.Version); err != nil {
				return r, fmt.Errorf("events[%d]: %s: %w", i, e.Kind, err)
			}
		}
		kinds[e.Kind] = true
		r.Events = append(r.Events, e)
	}
	if !kinds[Introduced] {
		return r, errors.New("range has no introduced event")
	}
	if kinds[Fixed] && kinds[LastAffected] {
		return r, errors.New("range has both fixed and last_affected events")
	}
	return r, nil
}

// scheme returns the ordering of the range's versions, and false for range
// types that are not evaluated.
func (r *AffectedRange) scheme(ecosystem string) (version.Scheme, bool) {
	switch r.Type {
	case RangeSemVer:
		return version.SemVer, true
	case RangeEcosystem:
		return version.SchemeFor(ecosystem), true
	}
	return "", false
}

func (we wireEvent) event() (Event, error) {
	var e Event
	n := 0
	for _, k := range []struct {
		kind EventKind
		v    *string
	}{{Introduced, we.Introduced}, {Fixed, we.Fixed}, {LastAffected, we.LastAffected}, {Limit, we.Limit}} {
		if k.v != nil {
			e, n = Event{Kind: k.kind, Version: *k.v}, n+1
		}
	}
	switch {
	case n == 0:
		return e, errors.New("event has none of introduced, fixed, last_affected, limit")
	case n > 1:
		return e, errors.New("event has more than one of introduced, fixed, last_affected, limit")
	case e.Version == "":
		return e, fmt.Errorf("%s event has an empty version", e.Kind)
	}
	return e, nil
}
