package osv

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/steward-iot/steward/internal/vuln/version"
)

func FuzzParse(f *testing.F) {
	files, err := filepath.Glob(filepath.Join(corpusDir(f), "osv", "*.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no OSV records in the corpus (%v)", err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(record(`{"package":{"ecosystem":"npm","name":"x"},"ranges":[{"type":"SEMVER","events":[{"introduced":"1.0.0"},{"limit":"*"},{"last_affected":"1.5.0"}]}],"versions":["0.1.0"]}`)))
	f.Add([]byte(record(`{"ranges":[{"type":"GIT","repo":"r","events":[{"introduced":"0"},{"limit":"abc"}]}]}`)))
	f.Add([]byte(`{"id":"","modified":""}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse(bytes.NewReader(data), 1<<16)
		if err != nil {
			if r != nil {
				t.Fatalf("Parse returned a record and an error: %v", err)
			}
			return
		}
		if r.ID == "" || r.Modified.IsZero() {
			t.Fatalf("parsed record lacks id or modified: %+v", r)
		}
		for _, a := range r.Affected {
			probe := func(v string) (Match, bool) {
				return r.Affects(Package{Ecosystem: a.Package.Ecosystem, Name: a.Package.Name, Version: v})
			}
			for _, v := range a.Versions {
				if _, ok := probe(v); !ok && r.Withdrawn.IsZero() && a.Package.Name != "" {
					t.Fatalf("version %q is listed but not affected", v)
				}
			}
			for _, rg := range a.Ranges {
				for _, e := range rg.Events {
					m, ok := probe(e.Version)
					if ok && (m.Affected < 0 || m.Affected >= len(r.Affected)) {
						t.Fatalf("match %+v points outside affected[]", m)
					}
					if ok && m.Fixed != "" && m.Range >= 0 {
						scheme, _ := r.Affected[m.Affected].Ranges[m.Range].scheme(r.Affected[m.Affected].Package.Ecosystem)
						if c, err := version.Compare(scheme, e.Version, m.Fixed); err != nil || c >= 0 {
							t.Fatalf("version %q is affected but not below its fix %q (%v)", e.Version, m.Fixed, err)
						}
					}
				}
			}
		}
	})
}

func FuzzParseVers(f *testing.F) {
	for _, s := range []string{
		"vers:deb/>=1.0|<1.1.1n-0+deb11u3", "vers:semver/<1.2.3|>=2.0.0|<2.0.5", "vers:npm/1.2.3|>=2.0.0|<5.0.0",
		"vers:apk/>=0.9.13|<1.2.3-r4", "vers:generic/>1.0|!=1.5|<=2.0", "vers:golang/*", "vers:npm/!=1.0.0",
		"vers:semver/1.0.0%2Bbuild", "vers:deb/<1.10|>=1.2|<1.0~rc1|>=0.9", "vers:npm/>=|<",
	} {
		f.Add(s, "1.2.3")
	}
	f.Fuzz(func(t *testing.T, s, probe string) {
		r, err := ParseVers(s)
		if err != nil {
			return
		}
		r.Contains(probe)
		for i, c := range r.Constraints {
			if i > 0 {
				if cmp, err := version.Compare(r.scheme, r.Constraints[i-1].Version, c.Version); err != nil || cmp >= 0 {
					t.Fatalf("constraints not strictly sorted: %v", r.Constraints)
				}
			}
			in := r.Contains(c.Version)
			switch c.Op {
			case "=", "<=", ">=":
				if !in {
					t.Fatalf("%q does not contain its own %s%s", s, c.Op, c.Version)
				}
			case "!=", "<", ">":
				if in {
					t.Fatalf("%q contains the version of its %s%s", s, c.Op, c.Version)
				}
			}
		}
	})
}
