package osv

import (
	"slices"
	"strings"
	"testing"
)

func TestPackagesFromPurl(t *testing.T) {
	p := func(eco, name, v, purl string) Package {
		return Package{Ecosystem: eco, Name: name, Version: v, Purl: purl}
	}
	for _, c := range []struct {
		purl, distro, srcName, srcVersion string
		want                              []Package
	}{
		{
			purl: "pkg:deb/debian/libssl1.1@1.1.0f-3+deb9u2?distro=debian-9.5", distro: "debian-9.5",
			srcName: "openssl", srcVersion: "1.1.0f-3+deb9u2",
			want: []Package{p("Debian:9", "openssl", "1.1.0f-3+deb9u2", "pkg:deb/debian/libssl1.1@1.1.0f-3+deb9u2?distro=debian-9.5")},
		},
		{
			// A binary rebuild carries its own version; OSV compares the source's.
			purl: "pkg:deb/debian/libfoo1@1.0-1+b2", distro: "debian-12", srcName: "foo", srcVersion: "1.0-1",
			want: []Package{p("Debian:12", "foo", "1.0-1", "pkg:deb/debian/libfoo1@1.0-1+b2")},
		},
		{
			purl: "pkg:deb/ubuntu/libssl3@3.0.2-0ubuntu1.6?distro=ubuntu-22.04",
			want: []Package{
				p("Ubuntu:22.04:LTS", "libssl3", "3.0.2-0ubuntu1.6", "pkg:deb/ubuntu/libssl3@3.0.2-0ubuntu1.6?distro=ubuntu-22.04"),
				p("Ubuntu:Pro:22.04:LTS", "libssl3", "3.0.2-0ubuntu1.6", "pkg:deb/ubuntu/libssl3@3.0.2-0ubuntu1.6?distro=ubuntu-22.04"),
			},
		},
		{
			purl: "pkg:deb/ubuntu/curl@7.85.0-1ubuntu0.1?distro=ubuntu-22.10",
			want: []Package{p("Ubuntu:22.10", "curl", "7.85.0-1ubuntu0.1", "pkg:deb/ubuntu/curl@7.85.0-1ubuntu0.1?distro=ubuntu-22.10")},
		},
		{
			purl: "pkg:deb/ubuntu/libcurl4@7.68.0-1ubuntu2.13?arch=amd64&upstream=curl&distro=ubuntu-20.04.6",
			want: []Package{
				p("Ubuntu:20.04:LTS", "curl", "7.68.0-1ubuntu2.13", "pkg:deb/ubuntu/libcurl4@7.68.0-1ubuntu2.13?arch=amd64&upstream=curl&distro=ubuntu-20.04.6"),
				p("Ubuntu:Pro:20.04:LTS", "curl", "7.68.0-1ubuntu2.13", "pkg:deb/ubuntu/libcurl4@7.68.0-1ubuntu2.13?arch=amd64&upstream=curl&distro=ubuntu-20.04.6"),
			},
		},
		{
			purl: "pkg:deb/ubuntu/libfoo@1.0-1build1?upstream=foo%401.0-1&distro=ubuntu-23.10",
			want: []Package{p("Ubuntu:23.10", "foo", "1.0-1", "pkg:deb/ubuntu/libfoo@1.0-1build1?upstream=foo%401.0-1&distro=ubuntu-23.10")},
		},
		{
			purl: "pkg:deb/debian/zlib1g@1.2.8.dfsg-5?epoch=1&distro=debian-9",
			want: []Package{p("Debian:9", "zlib1g", "1:1.2.8.dfsg-5", "pkg:deb/debian/zlib1g@1.2.8.dfsg-5?epoch=1&distro=debian-9")},
		},
		{
			purl: "pkg:apk/alpine/musl-utils@1.2.3-r0?distro=3.16.1", srcName: "musl", srcVersion: "1.2.3-r0",
			want: []Package{p("Alpine:v3.16", "musl", "1.2.3-r0", "pkg:apk/alpine/musl-utils@1.2.3-r0?distro=3.16.1")},
		},
		{
			purl: "pkg:apk/alpine/busybox@1.36.1-r2?distro=3.18.0", distro: "alpine-3.19.1",
			want: []Package{p("Alpine:v3.19", "busybox", "1.36.1-r2", "pkg:apk/alpine/busybox@1.36.1-r2?distro=3.18.0")},
		},
		{
			purl: "pkg:golang/golang.org/x/sys@v0.0.0-20220520151302-bc2c85ada10a",
			want: []Package{p("Go", "golang.org/x/sys", "v0.0.0-20220520151302-bc2c85ada10a", "pkg:golang/golang.org/x/sys@v0.0.0-20220520151302-bc2c85ada10a")},
		},
		{purl: "pkg:npm/tar@6.1.11", want: []Package{p("npm", "tar", "6.1.11", "pkg:npm/tar@6.1.11")}},
		{purl: "pkg:npm/%40babel/core@7.0.0", want: []Package{p("npm", "@babel/core", "7.0.0", "pkg:npm/%40babel/core@7.0.0")}},
		{purl: "pkg:pypi/django@4.2", want: []Package{p("PyPI", "django", "4.2", "pkg:pypi/django@4.2")}},
		{purl: "pkg:cargo/rand@0.8.5", want: []Package{p("crates.io", "rand", "0.8.5", "pkg:cargo/rand@0.8.5")}},
		{purl: "pkg:gem/rails@7.0.0", want: []Package{p("RubyGems", "rails", "7.0.0", "pkg:gem/rails@7.0.0")}},
		{purl: "pkg:maven/org.apache.commons/commons-text@1.9", want: []Package{p("Maven", "org.apache.commons:commons-text", "1.9", "pkg:maven/org.apache.commons/commons-text@1.9")}},
		{purl: "pkg:composer/symfony/http-kernel@5.4.0", want: []Package{p("Packagist", "symfony/http-kernel", "5.4.0", "pkg:composer/symfony/http-kernel@5.4.0")}},
		{purl: "pkg:nuget/Newtonsoft.Json@13.0.1", want: []Package{p("NuGet", "Newtonsoft.Json", "13.0.1", "pkg:nuget/Newtonsoft.Json@13.0.1")}},
		{purl: "pkg:hex/phoenix@1.7.0", want: []Package{p("Hex", "phoenix", "1.7.0", "pkg:hex/phoenix@1.7.0")}},
		{purl: "pkg:pub/http@1.1.0", want: []Package{p("Pub", "http", "1.1.0", "pkg:pub/http@1.1.0")}},
		{purl: "pkg:generic/openssl@1.1.1"},
		{purl: "pkg:oci/armv7hf-alpine-node@sha256:2ce0427c?arch=arm"},
	} {
		got, err := PackagesFromPurl(c.purl, c.distro, c.srcName, c.srcVersion)
		if err != nil {
			t.Errorf("PackagesFromPurl(%q): %v", c.purl, err)
			continue
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("PackagesFromPurl(%q) = %+v, want %+v", c.purl, got, c.want)
		}
	}
}

func TestPackagesFromPurlRejects(t *testing.T) {
	for _, c := range []struct{ purl, distro, want string }{
		{"not a purl", "", "osv: purl \"not a purl\""},
		{"pkg:deb/debian/openssl@1.1.0f-3", "", "no distribution release given"},
		{"pkg:deb/debian/openssl@1.1.0f-3", "fedora-36", `namespace "debian" does not match distribution "fedora-36"`},
		{"pkg:deb/debian/openssl@1.1.0f-3?distro=ubuntu-22.04", "", `namespace "debian" does not match`},
		{"pkg:deb/debian/openssl@1.1.0f-3", "debian-bookworm", `release "bookworm" is not numeric`},
		{"pkg:deb/debian/openssl@1.1.0f-3", "debian", `release "" is not numeric`},
		{"pkg:deb/ubuntu/openssl@3.0.2", "ubuntu-22", "unsupported distribution or release"},
		{"pkg:deb/raspbian/openssl@1.1.1", "raspbian-11", "unsupported distribution or release"},
		{"pkg:apk/alpine/musl@1.2.3-r0", "debian-9", `namespace "alpine" does not match`},
		{"pkg:apk/alpine/musl@1.2.3-r0", "3", "unsupported distribution or release"},
		{"pkg:deb/debian/openssl", "debian-9", "no version"},
		{"pkg:golang/golang.org/x/sys", "", "has no version"},
	} {
		_, err := PackagesFromPurl(c.purl, c.distro, "", "")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("PackagesFromPurl(%q, %q) error = %v, want one containing %q", c.purl, c.distro, err, c.want)
		}
	}
}

// A device on Ubuntu 16.04 after standard support gets its zlib fix only
// through Ubuntu Pro; USN-5570-1 records it under "Ubuntu:Pro:16.04:LTS",
// and the device is affected whether or not it subscribes.
func TestUbuntuProReachesLTSDevices(t *testing.T) {
	usn := loadRecords(t)["USN-5570-1"]
	pkgs, err := PackagesFromPurl("pkg:deb/ubuntu/zlib1g@1:1.2.8.dfsg-2ubuntu4.3?distro=ubuntu-16.04", "", "zlib", "")
	if err != nil {
		t.Fatal(err)
	}
	var fixes []string
	for _, p := range pkgs {
		if m, ok := usn.Affects(p); ok {
			fixes = append(fixes, p.Ecosystem+" "+m.Fixed)
		}
	}
	if want := []string{"Ubuntu:Pro:16.04:LTS 1:1.2.8.dfsg-2ubuntu4.3+esm2"}; !slices.Equal(fixes, want) {
		t.Errorf("matches = %v, want %v", fixes, want)
	}
}
