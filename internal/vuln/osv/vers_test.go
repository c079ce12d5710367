package osv

import (
	"slices"
	"strings"
	"testing"
)

func TestVersContains(t *testing.T) {
	for _, c := range []struct {
		vers     string
		in, out  []string
		wantType string
	}{
		{
			vers:     "vers:deb/>=1.0|<1.1.1n-0+deb11u3",
			in:       []string{"1.0", "1.0-1", "1.1.1n-0+deb11u2", "1.1.1n-0+deb11u3~bpo1", "1.1.1"},
			out:      []string{"0.9", "1.0~rc1", "1.1.1n-0+deb11u3", "1.1.1n-0+deb11u4", "1.10"},
			wantType: "deb",
		},
		{
			vers: "vers:semver/<1.2.3|>=2.0.0|<2.0.5",
			in:   []string{"0.0.1", "1.2.2", "1.2.3-rc.1", "2.0.0", "2.0.4"},
			out:  []string{"1.2.3", "1.5.0", "2.0.0-rc.1", "2.0.5", "2.0.10", "not-semver"},
		},
		{
			vers: "vers:npm/1.2.3|>=2.0.0|<5.0.0",
			in:   []string{"1.2.3", "v1.2.3", "2.0.0", "4.99.0"},
			out:  []string{"1.2.4", "1.9.0", "5.0.0"},
		},
		{
			vers: "vers:golang/>=v0.0.0-20220101000000-aaaaaaaaaaaa|<0.0.0-20220412211240-33da011f77ad",
			in:   []string{"v0.0.0-20220301000000-bbbbbbbbbbbb"},
			out:  []string{"v0.0.0-20220520151302-bc2c85ada10a", "0.1.0"},
		},
		{
			vers: "vers:apk/>=0.9.13|<1.2.3-r4",
			in:   []string{"0.9.13", "1.2.3-r0", "1.2.3-r3", "1.2.3_rc1"},
			out:  []string{"0.9.12", "1.2.3-r4", "1.2.3-r10", "1.2.3_p1"},
		},
		{
			vers: "vers:alpine/<=1.2.3",
			in:   []string{"1.2.3", "1.2.3_rc1"},
			out:  []string{"1.2.3-r0"},
		},
		{
			vers: "vers:generic/>1.0|<=2.0",
			in:   []string{"1.0.1", "1.5", "2.0", "2.0.0"},
			out:  []string{"1.0", "1.0.0", "2.0.1"},
		},
		{
			vers: "vers:npm/>=1.0.0|!=1.5.0|<2.0.0",
			in:   []string{"1.0.0", "1.4.9", "1.5.1"},
			out:  []string{"1.5.0", "2.0.0", "0.9.0"},
		},
		{vers: "vers:npm/!=1.0.0|!=2.0.0", in: []string{"1.5.0", "3.0.0"}, out: []string{"1.0.0", "2.0.0"}},
		{vers: "vers:npm/1.0.0|3.0.0", in: []string{"1.0.0", "3.0.0"}, out: []string{"2.0.0"}},
		{vers: "vers:npm/>2.0.0", in: []string{"2.0.1"}, out: []string{"2.0.0", "1.0.0"}},
		{vers: "vers:npm/<2.0.0|>3.0.0", in: []string{"1.0.0", "3.0.1"}, out: []string{"2.0.0", "2.5.0", "3.0.0"}},
		{vers: "vers:deb/*", in: []string{"1.0", "anything at all"}},
		{vers: " vers:npm / >= 1.0.0 | | < 2.0.0 |", in: []string{"1.0.0", "1.9.9"}, out: []string{"2.0.0"}},
		{vers: "vers:semver/1.0.0%2Bbuild.5", in: []string{"1.0.0", "1.0.0+other"}, out: []string{"1.0.1"}},
	} {
		r, err := ParseVers(c.vers)
		if err != nil {
			t.Errorf("ParseVers(%q): %v", c.vers, err)
			continue
		}
		if c.wantType != "" && r.Type != c.wantType {
			t.Errorf("ParseVers(%q).Type = %q", c.vers, r.Type)
		}
		for _, v := range c.in {
			if !r.Contains(v) {
				t.Errorf("%s does not contain %q", c.vers, v)
			}
		}
		for _, v := range c.out {
			if r.Contains(v) {
				t.Errorf("%s contains %q", c.vers, v)
			}
		}
	}
	if (Range{}).Contains("1.0.0") {
		t.Error("the zero Range contains a version")
	}
}

// Constraints come back sorted by version under the scheme, whatever order
// they were written in.
func TestParseVersSorts(t *testing.T) {
	r, err := ParseVers("vers:deb/<1.10|>=1.2|!=1.5|<1.0~rc1|>=0.9")
	if err != nil {
		t.Fatal(err)
	}
	want := []Constraint{{">=", "0.9"}, {"<", "1.0~rc1"}, {">=", "1.2"}, {"!=", "1.5"}, {"<", "1.10"}}
	if !slices.Equal(r.Constraints, want) {
		t.Errorf("constraints = %v, want %v", r.Constraints, want)
	}
	for v, in := range map[string]bool{"0.8": false, "0.95": true, "1.0": false, "1.3": true, "1.5": false, "1.9": true, "1.10": false} {
		if r.Contains(v) != in {
			t.Errorf("Contains(%q) = %v, want %v", v, !in, in)
		}
	}
}

func TestParseVersRejects(t *testing.T) {
	for _, c := range []struct{ vers, want string }{
		{"", `does not start with "vers:"`},
		{"npm/1.0.0", `does not start with "vers:"`},
		{"VERS:npm/1.0.0", `does not start with "vers:"`},
		{"vers:npm", "no versioning scheme"},
		{"vers:/1.0.0", "no versioning scheme"},
		{"vers:NPM/1.0.0", `unsupported versioning scheme "NPM"`},
		{"vers:pypi/1.0", `unsupported versioning scheme "pypi"`},
		{"vers:npm/", "no constraints"},
		{"vers:npm/||", "no constraints"},
		{"vers:npm/*|1.0.0", `unquoted comparator or "*"`},
		{"vers:npm/>=", `constraint ">=" has no version`},
		{"vers:npm/1.0.0|1.0.0", `"1.0.0" appears twice`},
		{"vers:npm/<1.0.0|v1.0.0", "appears twice"},
		{"vers:npm/<1.0.0|<2.0.0", "must alternate"},
		{"vers:npm/>1.0.0|>=2.0.0", "must alternate"},
		{"vers:npm/=1.0.0|<2.0.0", "=1.0.0 is followed by <2.0.0"},
		{"vers:npm/1.2", "not MAJOR.MINOR.PATCH"},
		{"vers:deb/abc", "does not start with a digit"},
		{"vers:apk/1.0-1", "alpine version"},
		{"vers:npm/1.0.0%zz", "badly quoted"},
		{"vers:npm/1.0.0\x01", "printable ASCII"},
		{"vers:npm/1.0.0é", "printable ASCII"},
		{"vers:npm/>=<1.0.0", "unquoted comparator"},
	} {
		_, err := ParseVers(c.vers)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseVers(%q) error = %v, want one containing %q", c.vers, err, c.want)
		}
	}
}
