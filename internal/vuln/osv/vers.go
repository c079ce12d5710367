package osv

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/steward-iot/steward/internal/vuln/version"
)

// Range is a purl version range specifier ("vers"), such as
// "vers:deb/>=1.0|<1.1.1n-0+deb11u3".
type Range struct {
	Type        string       // the vers versioning scheme, e.g. "deb"
	Constraints []Constraint // sorted by version; empty for "*"
	scheme      version.Scheme
}

// Constraint is one comparator and version of a Range.
type Constraint struct {
	Op      string // "=", "!=", "<", "<=", ">" or ">="
	Version string
}

// versSchemes maps the vers versioning schemes this package can order.
var versSchemes = map[string]version.Scheme{
	"deb":     version.Debian,
	"apk":     version.Alpine,
	"alpine":  version.Alpine,
	"semver":  version.SemVer,
	"golang":  version.SemVer,
	"npm":     version.SemVer,
	"generic": version.Generic,
}

// ParseVers parses and validates a vers string as the vers specification
// says: spaces are not significant, versions containing "%" are unquoted,
// every version must be valid in the scheme and appear once, "*" stands
// alone, and (ignoring "!=") an "=" is followed only by "=", ">" or ">=",
// while "<"/"<=" and ">"/">=" alternate. A leading "=" is accepted as the
// explicit equality comparator.
func ParseVers(s string) (Range, error) {
	var r Range
	t := strings.NewReplacer(" ", "", "\t", "").Replace(s)
	for i := 0; i < len(t); i++ {
		if t[i] < 0x21 || t[i] > 0x7e {
			return r, fmt.Errorf("vers %q: only printable ASCII is allowed", s)
		}
	}
	uri, spec, ok := strings.Cut(t, ":")
	if !ok || uri != "vers" {
		return r, fmt.Errorf("vers %q does not start with \"vers:\"", s)
	}
	typ, constraints, ok := strings.Cut(spec, "/")
	if !ok || typ == "" {
		return r, fmt.Errorf("vers %q has no versioning scheme", s)
	}
	if r.scheme, ok = versSchemes[typ]; !ok {
		return r, fmt.Errorf("vers %q: unsupported versioning scheme %q", s, typ)
	}
	r.Type = typ
	if constraints == "*" {
		return r, nil
	}
	for c := range strings.SplitSeq(strings.Trim(constraints, "|"), "|") {
		if c == "" {
			continue // consecutive pipes count as one
		}
		con, err := parseConstraint(c, r.scheme)
		if err != nil {
			return r, fmt.Errorf("vers %q: %w", s, err)
		}
		r.Constraints = append(r.Constraints, con)
	}
	if len(r.Constraints) == 0 {
		return r, fmt.Errorf("vers %q has no constraints", s)
	}
	slices.SortStableFunc(r.Constraints, func(a, b Constraint) int {
		c, _ := version.Compare(r.scheme, a.Version, b.Version) // validated above
		return c
	})
	if err := r.checkOrder(); err != nil {
		return r, fmt.Errorf("vers %q: %w", s, err)
	}
	return r, nil
}

func parseConstraint(c string, scheme version.Scheme) (Constraint, error) {
	var con Constraint
	for _, op := range []string{">=", "<=", "!=", "<", ">", "="} {
		if strings.HasPrefix(c, op) {
			con.Op, c = op, c[len(op):]
			break
		}
	}
	if con.Op == "" {
		con.Op = "="
	}
	if c == "" {
		return con, fmt.Errorf("constraint %q has no version", con.Op)
	}
	if strings.ContainsAny(c, "<>=!*") {
		return con, fmt.Errorf("version %q has an unquoted comparator or \"*\"", c)
	}
	if strings.Contains(c, "%") {
		u, err := url.PathUnescape(c)
		if err != nil {
			return con, fmt.Errorf("version %q is badly quoted", c)
		}
		c = u
	}
	if err := version.Valid(scheme, c); err != nil {
		return con, err
	}
	con.Version = c
	return con, nil
}

// checkOrder applies the specification's validation of sorted constraints.
func (r *Range) checkOrder() error {
	for i := 1; i < len(r.Constraints); i++ {
		if c, _ := version.Compare(r.scheme, r.Constraints[i-1].Version, r.Constraints[i].Version); c == 0 {
			return fmt.Errorf("version %q appears twice", r.Constraints[i].Version)
		}
	}
	// Ignoring "!=", an "=" is followed only by "=", ">" or ">=".
	var kept []Constraint
	for _, c := range r.Constraints {
		if c.Op != "!=" {
			kept = append(kept, c)
		}
	}
	for i := 0; i+1 < len(kept); i++ {
		if kept[i].Op == "=" && (kept[i+1].Op == "<" || kept[i+1].Op == "<=") {
			return fmt.Errorf("%s%s is followed by %s%s", kept[i].Op, kept[i].Version, kept[i+1].Op, kept[i+1].Version)
		}
	}
	// Ignoring "=" too, lesser and greater comparators alternate.
	var bounds []Constraint
	for _, c := range kept {
		if c.Op != "=" {
			bounds = append(bounds, c)
		}
	}
	for i := 0; i+1 < len(bounds); i++ {
		if isLesser(bounds[i].Op) == isLesser(bounds[i+1].Op) {
			return fmt.Errorf("%s%s is followed by %s%s; lesser and greater comparators must alternate",
				bounds[i].Op, bounds[i].Version, bounds[i+1].Op, bounds[i+1].Version)
		}
	}
	return nil
}

func isLesser(op string) bool { return op == "<" || op == "<=" }

// Contains reports whether v is in the range, by the specification's
// algorithm. A version the scheme cannot read is in no range but "*". A
// range of only "!=" constraints holds every other version.
func (r Range) Contains(v string) bool {
	if r.scheme == "" {
		return false // the zero Range
	}
	if len(r.Constraints) == 0 {
		return true // "*"
	}
	if version.Valid(r.scheme, v) != nil {
		return false
	}
	cmp := func(a, b string) int {
		c, _ := version.Compare(r.scheme, a, b) // both valid
		return c
	}
	onlyUnequal := true
	var bounds []Constraint
	for _, c := range r.Constraints {
		if cmp(v, c.Version) == 0 {
			switch c.Op {
			case "=", "<=", ">=":
				return true
			case "!=":
				return false
			}
		}
		if c.Op != "!=" {
			onlyUnequal = false
		}
		if c.Op != "=" && c.Op != "!=" {
			bounds = append(bounds, c)
		}
	}
	switch len(bounds) {
	case 0:
		return onlyUnequal
	case 1:
		if isLesser(bounds[0].Op) {
			return cmp(v, bounds[0].Version) < 0
		}
		return cmp(v, bounds[0].Version) > 0
	}
	for i := 0; i+1 < len(bounds); i++ {
		cur, next := bounds[i], bounds[i+1]
		if i == 0 && isLesser(cur.Op) && cmp(v, cur.Version) < 0 {
			return true
		}
		if i+2 == len(bounds) && !isLesser(next.Op) && cmp(v, next.Version) > 0 {
			return true
		}
		if !isLesser(cur.Op) && isLesser(next.Op) && cmp(v, cur.Version) > 0 && cmp(v, next.Version) < 0 {
			return true
		}
	}
	return false
}
