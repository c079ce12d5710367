package version

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// Generators draw from small alphabets, so that generated versions often
// share prefixes, tie, or differ only where the schemes are subtle.
var generators = map[Scheme]func(r *rand.Rand) string{
	Debian: func(r *rand.Rand) string {
		var b strings.Builder
		if r.IntN(4) == 0 {
			b.WriteString(pick(r, "0:", "1:", "2:"))
		}
		b.WriteString(pick(r, "0", "1", "2", "10", "01"))
		b.WriteString(draw(r, "019.+~ab", r.IntN(6)))
		if r.IntN(2) == 0 {
			b.WriteString("-" + draw(r, "019.+~ab", 1+r.IntN(4)))
		}
		return b.String()
	},
	Alpine: func(r *rand.Rand) string {
		var b strings.Builder
		b.WriteString(pick(r, "0", "1", "2", "10", "01"))
		for range r.IntN(3) {
			b.WriteString(pick(r, ".0", ".1", ".2", ".10", ".01", ".007"))
		}
		if r.IntN(3) == 0 {
			b.WriteString(pick(r, "a", "b", "z"))
		}
		for range r.IntN(3) {
			b.WriteString(pick(r, "_alpha", "_beta", "_pre", "_rc", "_cvs", "_svn", "_git", "_hg", "_p"))
			b.WriteString(pick(r, "", "1", "2", "10"))
		}
		if r.IntN(4) == 0 {
			b.WriteString(pick(r, "~ab", "~ac", "~1"))
		}
		if r.IntN(2) == 0 {
			b.WriteString(pick(r, "-r0", "-r1", "-r2", "-r10"))
		}
		return b.String()
	},
	SemVer: func(r *rand.Rand) string {
		n := func() string { return pick(r, "0", "1", "2", "10") }
		s := pick(r, "", "v") + n() + "." + n() + "." + n()
		if r.IntN(2) == 0 {
			ids := make([]string, 1+r.IntN(3))
			for i := range ids {
				ids[i] = pick(r, "0", "1", "2", "11", "alpha", "beta", "rc", "x-y", "20220412211240-33da011f77ad")
			}
			s += "-" + strings.Join(ids, ".")
		}
		if r.IntN(4) == 0 {
			s += "+" + pick(r, "build", "1", "sha.5114f85")
		}
		return s
	},
	Generic: func(r *rand.Rand) string {
		return pick(r, "", "v") + pick(r, "0", "1", "2") + draw(r, "012.-_abRC", r.IntN(7))
	},
}

func pick(r *rand.Rand, options ...string) string { return options[r.IntN(len(options))] }

func draw(r *rand.Rand, alphabet string, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(b)
}

func TestOrderingProperties(t *testing.T) {
	for scheme, gen := range generators {
		t.Run(string(scheme), func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, uint64(len(scheme))))
			var vs []string
			for len(vs) < 400 {
				v := gen(r)
				if Valid(scheme, v) == nil {
					vs = append(vs, v)
				}
			}
			cmp := func(a, b string) int {
				c, err := Compare(scheme, a, b)
				if err != nil {
					t.Fatalf("Compare(%q, %q): %v", a, b, err)
				}
				return c
			}
			for _, a := range vs {
				if c := cmp(a, a); c != 0 {
					t.Fatalf("Compare(%q, %q) = %d, want 0", a, a, c)
				}
			}
			// Antisymmetry on every pair.
			for _, a := range vs {
				for _, b := range vs {
					if cmp(a, b) != -cmp(b, a) {
						t.Fatalf("Compare(%q, %q) = %d but Compare(%q, %q) = %d", a, b, cmp(a, b), b, a, cmp(b, a))
					}
				}
			}
			// Transitivity: once sorted, no later version may be older than an
			// earlier one, and equal neighbours must be equal to the whole run.
			sorted := slices.Clone(vs)
			slices.SortStableFunc(sorted, cmp)
			for i := range sorted {
				for j := i + 1; j < len(sorted); j++ {
					if cmp(sorted[i], sorted[j]) > 0 {
						t.Fatalf("not transitive: %q sorts before %q but is newer", sorted[i], sorted[j])
					}
				}
			}
			for range 20000 {
				a, b, c := vs[r.IntN(len(vs))], vs[r.IntN(len(vs))], vs[r.IntN(len(vs))]
				if cmp(a, b) <= 0 && cmp(b, c) <= 0 && cmp(a, c) > 0 {
					t.Fatalf("not transitive: %q <= %q <= %q but %q > %q", a, b, c, a, c)
				}
				if cmp(a, b) == 0 && cmp(b, c) == 0 && cmp(a, c) != 0 {
					t.Fatalf("equality not transitive: %q = %q = %q", a, b, c)
				}
			}
		})
	}
}
