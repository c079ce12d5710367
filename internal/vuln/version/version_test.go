package version

import (
	"testing"
)

type pair struct {
	a, b string
	want int
}

func checkPairs(t *testing.T, s Scheme, pairs []pair) {
	t.Helper()
	for _, p := range pairs {
		got, err := Compare(s, p.a, p.b)
		if err != nil {
			t.Errorf("Compare(%s, %q, %q): %v", s, p.a, p.b, err)
			continue
		}
		if got != p.want {
			t.Errorf("Compare(%s, %q, %q) = %d, want %d", s, p.a, p.b, got, p.want)
		}
		if back, _ := Compare(s, p.b, p.a); back != -p.want {
			t.Errorf("Compare(%s, %q, %q) = %d, want %d", s, p.b, p.a, back, -p.want)
		}
	}
}

// Every expectation here was checked with dpkg --compare-versions (dpkg 1.21).
func TestCompareDebian(t *testing.T) {
	checkPairs(t, Debian, []pair{
		{"1.0~rc1", "1.0", -1},
		{"1.0~rc1", "1.0~rc2", -1},
		{"1.0~~", "1.0~", -1},
		{"1.0~", "1.0", -1},
		{"1.0", "1.0a", -1},
		{"1.0a", "1.0+", -1},
		{"1.0+", "1.0.", -1},
		{"1.0", "1.0.0", -1},
		{"1:0.1", "2.0", 1},
		{"0:1.0", "1.0", 0},
		{"1.0", "1.0-0", 0},
		{"1.0-1", "1.0-1+deb9u1", -1},
		{"1.0-1+deb9u1", "1.0-2", -1},
		{"2.30-1ubuntu1", "2.30-1ubuntu1.1", -1},
		{"2.30-1ubuntu1.1", "2.30-1ubuntu2", -1},
		{"1.1.0f-3+deb9u2", "1.1.0l-1~deb9u6", -1},
		{"1.1.0l-1~deb9u5", "1.1.0l-1~deb9u6", -1},
		{"1.1.0l-1~deb9u6", "1.1.0l-1", -1},
		{"1.1.0l-1", "1.1.0l-1+deb9u1", -1},
		{"2.9.4+dfsg1-2.2+deb9u6", "2.9.4+dfsg1-2.2+deb9u7", -1},
		{"2.9.4+dfsg1-2.2", "2.9.4+dfsg1-2.2+deb9u7", -1},
		{"1.18.25", "1.18.26", -1},
		{"1.18.26", "1.18.26~", 1},
		{"2018e-0+deb9u1", "2021a-0+deb9u4", -1},
		{"2021a-0+deb9u3", "2021a-0+deb9u4", -1},
		{"2021a-0+deb9u4", "2021a-1", -1},
		{"3.0.2-0ubuntu1.6", "3.0.2-0ubuntu1.7", -1},
		{"3.0.2-0ubuntu1.7", "3.0.2-0ubuntu1.10", -1},
		{"7.81.0-1ubuntu1.4", "7.81.0-1ubuntu1.6", -1},
		{"7.68.0-1ubuntu2.13", "7.68.0-1ubuntu2.14", -1},
		{"1:1.2.11.dfsg-2ubuntu1.3", "1:1.2.8.dfsg-2ubuntu4.3+esm2", 1},
		{"1:1.2.11.dfsg-0ubuntu2.1", "1:1.2.11.dfsg-0ubuntu2.2", -1},
		{"1.2.11.dfsg-2ubuntu9.2", "1:1.2.11.dfsg-0ubuntu2.2", -1},
		{"1.10", "1.9", 1},
		{"1.001", "1.1", 0},
		{"1.0-1", "1.0-01", 0},
		{"9", "10", -1},
		{"1.2.3", "1.2.3-1", -1},
		{"1.0-a-b", "1.0-a", 1},
		{"1:1.0-1", "1:1.0-1", 0},
		{" 1.0 ", "1.0", 0},
	})
}

// Every expectation here was checked against apk-tools' src/version.c.
func TestCompareAlpine(t *testing.T) {
	checkPairs(t, Alpine, []pair{
		{"1.2.3_rc1", "1.2.3", -1},
		{"1.2.3", "1.2.3-r0", -1},
		{"1.2.3-r0", "1.2.3-r1", -1},
		{"1.2.3-r1", "1.2.3_p1-r0", -1},
		{"1.2.3_p1-r0", "1.2.3.1", -1},
		{"1.2.3_alpha", "1.2.3_beta", -1},
		{"1.2.3_beta", "1.2.3_pre", -1},
		{"1.2.3_pre", "1.2.3_rc", -1},
		{"1.2.3_rc", "1.2.3_rc1", -1},
		{"1.2.3_cvs", "1.2.3_svn", -1},
		{"1.2.3_svn", "1.2.3_git", -1},
		{"1.2.3_git", "1.2.3_hg", -1},
		{"1.2.3_hg", "1.2.3_p", -1},
		{"1.2.3", "1.2.3a", -1},
		{"1.2.3a", "1.2.3b", -1},
		{"1.2.3z", "1.2.4", -1},
		{"1.2", "1.2.0", -1},
		{"1.10", "1.9", 1},
		{"1.010", "1.09", -1},
		{"1.0.4-r3", "1.0.4-r10", -1},
		{"1.2.3-r4", "1.2.3-r10", -1},
		{"1.2.3-r0", "1.2.3-r4", -1},
		{"1.2.3-r4", "1.2.3-r6", -1},
		{"1.2.4-r3", "1.2.4_git20230717-r5", -1},
		{"1.2.5-r9", "1.2.5-r10", -1},
		{"0.9.13", "1.2.3-r0", -1},
		{"1.1.1q-r0", "1.1.1t-r0", -1},
		{"1.0_p10-r0", "1.0_p9-r0", 1},
		{"0.1.0_alpha_pre2", "0.1.0_alpha", -1},
		{"1.2~ab", "1.2~ac", -1},
		{"1.2~ab", "1.2", 1},
		{"1.2~ab-r1", "1.2-r1", 1},
		{"006", "1.06-r6", 1},
		{"2.3.0b-r1", "2.3.0b-r2", -1},
		{"1.2.3-r1", "1.2.3-r01", 0},
	})
}

func TestCompareSemVer(t *testing.T) {
	// The chain from semver.org section 11, then Go-style versions.
	chain := []string{"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta",
		"1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "2.0.0", "2.1.0", "2.1.1", "10.0.0"}
	var pairs []pair
	for i := 0; i+1 < len(chain); i++ {
		pairs = append(pairs, pair{chain[i], chain[i+1], -1})
	}
	checkPairs(t, SemVer, append(pairs, []pair{
		{"6.1.9", "6.1.11", -1},
		{"v1.2.3", "1.2.3", 0},
		{"1.2.3+build.1", "1.2.3+build.2", 0},
		{"1.18.0-0", "1.18.0", -1},
		{"1.17.10", "1.18.0-0", -1},
		{"0.0.0-20220412211240-33da011f77ad", "0.0.0-20220520151302-bc2c85ada10a", -1},
		{"v0.0.0-20220520151302-bc2c85ada10a", "0.1.0", -1},
		{"1.0.0-x-y", "1.0.0-x", 1},
		{"99999999999999999999.0.0", "9.0.0", 1},
	}...))
}

func TestCompareGeneric(t *testing.T) {
	checkPairs(t, Generic, []pair{
		{"1.0", "1.0.0", 0},
		{"1.0rc1", "1.0", -1},
		{"1.0-beta", "1.0", -1},
		{"1.0.alpha", "1.0.beta", -1},
		{"1.0", "1.0.1", -1},
		{"1.9", "1.10", -1},
		{"v2.0", "2.0", 0},
		{"1.0RC1", "1.0rc1", 0},
		{"2022.1", "2022.01.0", 0},
		{"1.0.0-beta.2", "1.0.0-beta.10", -1},
	})
}

func TestValidRejects(t *testing.T) {
	for _, c := range []struct {
		s Scheme
		v string
	}{
		{Debian, ""}, {Debian, "   "}, {Debian, "1.0 1"}, {Debian, ":1.0"}, {Debian, "a:1.0"},
		{Debian, "1:"}, {Debian, "1.0-"}, {Debian, "-1"}, {Debian, "abc"}, {Debian, "1.0_1"},
		{Debian, "1.0-1_2"}, {Debian, "99999999999:1.0"}, {Debian, "1.0-ü"},
		{Alpine, ""}, {Alpine, ".1"}, {Alpine, "1-r"}, {Alpine, "1.0-1"}, {Alpine, "1.0_foo"},
		{Alpine, "1.0ab"}, {Alpine, "1.0A"}, {Alpine, "1.0-r1-r2"}, {Alpine, "1.0~"}, {Alpine, "1.0_"},
		{Alpine, "1.0-r1_p1"}, {Alpine, "v1.0"},
		{SemVer, ""}, {SemVer, "1.2"}, {SemVer, "1.2.3.4"}, {SemVer, "01.2.3"}, {SemVer, "1.2.3-01"},
		{SemVer, "1.2.3-"}, {SemVer, "1.2.3+"}, {SemVer, "1.2.3-a..b"}, {SemVer, "1.2.3-a_b"},
		{SemVer, "0"}, {SemVer, "vv1.2.3"}, {SemVer, "1.2.x"},
		{Generic, ""}, {Generic, "..."}, {Generic, "1 0"}, {Generic, "1.0\x00"},
	} {
		if err := Valid(c.s, c.v); err == nil {
			t.Errorf("Valid(%s, %q) = nil, want an error", c.s, c.v)
		}
		if _, err := Compare(c.s, c.v, "1.0.0"); err == nil {
			t.Errorf("Compare(%s, %q, ...) = nil error, want one", c.s, c.v)
		}
	}
	if _, err := Compare("rpm", "1", "1"); err == nil {
		t.Error("Compare with an unknown scheme succeeded")
	}
	if err := Valid("", "1"); err == nil {
		t.Error("Valid with the zero scheme succeeded")
	}
}

func TestSchemeFor(t *testing.T) {
	for eco, want := range map[string]Scheme{
		"Debian": Debian, "Debian:9": Debian, "Ubuntu": Debian, "Ubuntu:22.04:LTS": Debian,
		"Ubuntu:Pro:16.04:LTS": Debian, "Alpine": Alpine, "Alpine:v3.16": Alpine,
		"Go": SemVer, "npm": SemVer, "crates.io": SemVer, "Hex": SemVer,
		"PyPI": Generic, "Maven": Generic, "Packagist": Generic, "RubyGems": Generic, "": Generic,
		"debian": Generic, // ecosystem names are case-sensitive
	} {
		if got := SchemeFor(eco); got != want {
			t.Errorf("SchemeFor(%q) = %q, want %q", eco, got, want)
		}
	}
}
