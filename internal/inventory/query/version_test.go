package query

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// checkVersionPair fails t unless CompareVersions is antisymmetric on a, b
// and VersionKey orders them the same way.
func checkVersionPair(t *testing.T, a, b string) int {
	t.Helper()
	c := CompareVersions(a, b)
	if back := CompareVersions(b, a); back != -c {
		t.Fatalf("CompareVersions(%q, %q) = %d but CompareVersions(%q, %q) = %d", a, b, c, b, a, back)
	}
	ka, kb := VersionKey(a), VersionKey(b)
	if k := strings.Compare(ka, kb); k != c {
		t.Fatalf("CompareVersions(%q, %q) = %d but their keys %q, %q compare %d", a, b, c, ka, kb, k)
	}
	return c
}

func TestVersionKnownOrderings(t *testing.T) {
	// Each chain is strictly increasing.
	chains := [][]string{
		// The semver 2.0.0 specification, section 11.
		{"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0"},
		{"1.0.0", "2.0.0", "2.1.0", "2.1.1"},
		{"2.3.9", "2.3.10", "2.4.0"},
		{"2.9", "2.10", "10.0"},
		// Debian's tilde, before even the end of the version.
		{"1.0~~", "1.0~beta", "1.0~beta1", "1.0", "1.0.1", "1.0a"},
		// Numbers before letters at the same position (semver: numeric identifiers first).
		{"1.0.0-1", "1.0.0-a", "1.0.0"},
		{"1.0~rc1", "1.0-rc1", "1.0"},
		// Missing parts are not zeros.
		{"1", "1.0", "1.0.0"},
		// A pre-release sorts below the next patch level.
		{"1.0.0", "1.0.1-rc.1", "1.0.1"},
		// Numbers of any length.
		{"1.99999999999999999999", "1.100000000000000000000", "1.100000000000000000001", "2"},
		// Later hyphens only separate: "1-2" is one alphanumeric identifier in semver.
		{"1.0.0-rc.1", "1.0.0-rc.1-2", "1.0.0-rc.2"},
		{"", "0", "a"},
	}
	for _, chain := range chains {
		for i := range chain {
			for j := i + 1; j < len(chain); j++ {
				if c := checkVersionPair(t, chain[i], chain[j]); c >= 0 {
					t.Errorf("CompareVersions(%q, %q) = %d, want < 0", chain[i], chain[j], c)
				}
			}
		}
	}
	equal := [][2]string{
		{"v1.2.3", "1.2.3"},
		{"V1.2.3", "1.2.3"},
		{"1.2.3+build.5", "1.2.3"},
		{"1.0.0-rc.1+exp.sha.5114f85", "1.0.0-rc.1"},
		{"1.02", "1.2"},
		{"01.0.0", "1.0.0"},
		{"1_2", "1.2"},
		{"1..2", "1.2"},
		{"1.0.0-rc-1", "1.0.0-rc.1"},
		{"00000000000000000000000000001", "1"},
	}
	for _, p := range equal {
		if c := checkVersionPair(t, p[0], p[1]); c != 0 {
			t.Errorf("CompareVersions(%q, %q) = %d, want 0", p[0], p[1], c)
		}
	}
	if c := checkVersionPair(t, "vendor", "endor"); c == 0 {
		t.Errorf(`the "v" of "vendor" was dropped: it is not a version prefix`)
	}
}

// randomVersion builds versions from pieces that exercise every rule,
// with few enough choices that equal and near-equal versions are common.
func randomVersion(r *rand.Rand) string {
	pieces := []string{
		"0", "1", "2", "9", "10", "01", "007", "12345678901234567890123", "99999999999999999999",
		".", ".", ".", "-", "-", "_", "~", "+", "+build",
		"a", "b", "alpha", "beta", "rc", "v", "V", "A", "Z", "?", "@", "}", "\x00", "\xff", "é", "!",
	}
	var b strings.Builder
	if r.IntN(4) == 0 {
		b.WriteString("v")
	}
	for n := r.IntN(8); n > 0; n-- {
		b.WriteString(pieces[r.IntN(len(pieces))])
	}
	return b.String()
}

func TestVersionKeyAgreesWithCompare(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	vs := make([]string, 400)
	for i := range vs {
		vs[i] = randomVersion(r)
	}
	// Consistency with the key and antisymmetry, on every pair.
	for _, a := range vs {
		for _, b := range vs {
			checkVersionPair(t, a, b)
		}
	}
	// Transitivity, on every triple of a smaller sample.
	sample := vs[:120]
	for _, a := range sample {
		for _, b := range sample {
			ab := CompareVersions(a, b)
			for _, c := range sample {
				bc := CompareVersions(b, c)
				ac := CompareVersions(a, c)
				if ab <= 0 && bc <= 0 && ac > 0 {
					t.Fatalf("not transitive: %q <= %q <= %q but %q > %q", a, b, c, a, c)
				}
				if ab == 0 && bc == 0 && ac != 0 {
					t.Fatalf("equality not transitive: %q = %q = %q but %q != %q", a, b, c, a, c)
				}
			}
		}
	}
	// Sorting by key and by CompareVersions gives the same order.
	byCompare := slices.Clone(vs)
	slices.SortStableFunc(byCompare, CompareVersions)
	byKey := slices.Clone(vs)
	slices.SortStableFunc(byKey, func(a, b string) int { return cmp.Compare(VersionKey(a), VersionKey(b)) })
	if !slices.Equal(byCompare, byKey) {
		t.Fatal("sorting by VersionKey and by CompareVersions disagree")
	}
}

func FuzzVersionKey(f *testing.F) {
	f.Add("1.0.0-alpha", "1.0.0-alpha.1")
	f.Add("1.0~beta", "1.0")
	f.Add("v2.10+build", "2.9")
	f.Add("1.0.0-rc.1-2", "1.0.0-rc-1")
	f.Fuzz(func(t *testing.T, a, b string) {
		checkVersionPair(t, a, b)
		for _, k := range []string{VersionKey(a), VersionKey(b)} {
			if strings.Trim(k, "!\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~") != "" {
				t.Fatalf("key %q is not printable ASCII", k)
			}
		}
	})
}
