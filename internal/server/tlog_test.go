package server_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/release"
	"github.com/steward-iot/steward/internal/store/storetest"
	"github.com/steward-iot/steward/internal/tlog"
)

// logView is what a client has verified of a live server's log.
type logView struct {
	size    int64
	root    tlog.Hash
	entries []tlog.Entry
}

// readLog fetches the organization's checkpoint, verifies it with v, and
// fetches and proves every entry in it.
func readLog(t *testing.T, l *live, v note.Verifier) logView {
	t.Helper()
	base := l.url + "/tlog/acme"
	code, cp := fetch(t, base+"/checkpoint")
	if code != 200 {
		t.Fatalf("checkpoint: %d %s", code, cp)
	}
	size, root, err := tlog.VerifyCheckpoint(cp, v, v.Name())
	if err != nil {
		t.Fatalf("served checkpoint does not verify with the served key: %v\n%s", err, cp)
	}
	view := logView{size: size, root: root}
	for i := range size {
		code, leaf := fetch(t, fmt.Sprintf("%s/entries/%d", base, i))
		if code != 200 {
			t.Fatalf("entry %d: %d", i, code)
		}
		e, err := tlog.ParseEntry(leaf)
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		var p tlog.InclusionResponse
		code, b := fetch(t, fmt.Sprintf("%s/proof/inclusion?index=%d&size=%d", base, i, size))
		if code != 200 || json.Unmarshal(b, &p) != nil {
			t.Fatalf("inclusion proof of %d: %d %s", i, code, b)
		}
		if err := tlog.VerifyInclusion(leaf, i, size, root, p.Hashes); err != nil {
			t.Fatal(err)
		}
		if e.Org != "acme" {
			t.Fatalf("entry %d names org %q", i, e.Org)
		}
		view.entries = append(view.entries, e)
	}
	return view
}

// releaseIndex finds r's entry through the lookup and checks it is r.
func releaseIndex(t *testing.T, l *live, view logView, r release.Release) int64 {
	t.Helper()
	var found tlog.LookupResponse
	code, b := fetch(t, fmt.Sprintf("%s/tlog/acme/lookup?product=%s&release_counter=%d", l.url, r.Product, r.Counter))
	if code != 200 || json.Unmarshal(b, &found) != nil || len(found.Indexes) != 1 {
		t.Fatalf("lookup of %s %d: %d %s, want one index", r.Product, r.Counter, code, b)
	}
	i := found.Indexes[0]
	if i >= view.size || !tlog.SameExceptTime(view.entries[i], release.LogEntry("acme", r)) {
		t.Fatalf("entry %d is not release %s %s", i, r.Product, r.Version)
	}
	return i
}

// allServedLogged checks that every metadata file the TUF repository serves
// has a log entry with its role, version and sha256.
func allServedLogged(t *testing.T, l *live, view logView) {
	t.Helper()
	logged := map[string]bool{}
	for _, e := range view.entries {
		if e.Kind == tlog.KindMetadata {
			logged[fmt.Sprintf("%s %d %s", e.Role, e.MetadataVersion, e.SHA256)] = true
		}
	}
	check := func(role string, version int64, data []byte) {
		t.Helper()
		sum := sha256.Sum256(data)
		if k := fmt.Sprintf("%s %d %s", role, version, hex.EncodeToString(sum[:])); !logged[k] {
			t.Errorf("served %s version %d is not in the log", role, version)
		}
	}
	repo := l.url + "/tuf/acme/metadata/"
	for _, role := range []string{"root", "targets", "snapshot"} {
		v := int64(1)
		for ; ; v++ {
			code, b := fetch(t, fmt.Sprintf("%s%d.%s.json", repo, v, role))
			if code == 404 {
				break
			}
			if code != 200 {
				t.Fatalf("%d.%s.json: %d", v, role, code)
			}
			check(role, v, b)
		}
		if v == 1 {
			t.Errorf("no %s metadata served", role)
		}
	}
	code, b := fetch(t, repo+"timestamp.json")
	var ts struct {
		Signed struct{ Version int64 } `json:"signed"`
	}
	if code != 200 || json.Unmarshal(b, &ts) != nil {
		t.Fatalf("timestamp.json: %d", code)
	}
	check("timestamp", ts.Signed.Version, b)
}

// TestReleasesAndMetadataLogged creates releases on a live server and
// checks, as an outside client would, that the organization's log holds
// each release and every served metadata version, under signed
// checkpoints that stay consistent.
func TestReleasesAndMetadataLogged(t *testing.T) {
	for _, d := range storetest.Dialects(t) {
		t.Run(string(d), func(t *testing.T) {
			l := start(t, d)
			l.admin("POST", "/api/v1/orgs/acme/products", inventory.CreateProductRequest{Slug: "gw", Name: "GW", HardwareID: "gw-hw",
				Capability: inventory.CapabilityAB, LinkClass: "wifi"}, nil)
			for _, path := range []string{"/tlog/acme/key", "/tlog/acme/checkpoint", "/tlog/nope/key"} {
				if code, b := fetch(t, l.url+path); code != 404 {
					t.Fatalf("%s before any release: %d %s, want 404", path, code, b)
				}
			}

			a1 := l.upload("fw.img", []byte(strings.Repeat("image one ", 1000)))
			a2 := l.upload("extra.img", []byte(strings.Repeat("extra one ", 1000)))
			var r1 release.Release
			l.admin("POST", "/api/v1/orgs/acme/releases", release.CreateReleaseRequest{Product: "gw", Version: "1.0.0",
				Artifacts: []release.ArtifactRef{{ID: a1.ID}, {ID: a2.ID}}}, &r1)

			code, key := fetch(t, l.url+"/tlog/acme/key")
			if code != 200 {
				t.Fatalf("key: %d %s", code, key)
			}
			v, err := note.NewVerifier(strings.TrimSpace(string(key)))
			if err != nil {
				t.Fatalf("served key %q: %v", key, err)
			}
			if !strings.HasPrefix(v.Name(), "steward-tlog/acme/") {
				t.Errorf("log origin %q", v.Name())
			}
			first := readLog(t, l, v)
			// The release is logged before it is signed into metadata.
			if i := releaseIndex(t, l, first, r1); i != 0 {
				t.Errorf("release entry at %d, want 0: logged before its metadata", i)
			}
			allServedLogged(t, l, first)

			a3 := l.upload("fw2.img", []byte(strings.Repeat("image two ", 1000)))
			var r2 release.Release
			l.admin("POST", "/api/v1/orgs/acme/releases", release.CreateReleaseRequest{Product: "gw", Version: "1.1.0",
				Artifacts: []release.ArtifactRef{{ID: a3.ID}}}, &r2)
			second := readLog(t, l, v)
			if second.size <= first.size {
				t.Fatalf("log size %d after the second release, was %d", second.size, first.size)
			}
			for i := range first.entries {
				if !tlog.SameExceptTime(first.entries[i], second.entries[i]) || !first.entries[i].LoggedAt.Equal(second.entries[i].LoggedAt) {
					t.Fatalf("entry %d changed", i)
				}
			}
			if i := releaseIndex(t, l, second, r2); i < first.size {
				t.Errorf("second release at %d, inside the first checkpoint of size %d", i, first.size)
			}
			allServedLogged(t, l, second)
			// Publishing a release signs new targets, snapshot and timestamp.
			roles := map[string]int{}
			for _, e := range second.entries[first.size:] {
				roles[e.Role]++
			}
			if roles["targets"] < 1 || roles["snapshot"] < 1 || roles["timestamp"] < 1 {
				t.Errorf("metadata logged for the second release: %v", roles)
			}

			// Two artifacts of one name would collide in target paths and
			// in the entry: refused before anything is recorded or logged.
			dup := l.upload("fw2.img", []byte("another image with the same name"))
			body, _ := json.Marshal(release.CreateReleaseRequest{Product: "gw", Version: "1.2.0",
				Artifacts: []release.ArtifactRef{{ID: a3.ID}, {ID: dup.ID}}})
			req, _ := http.NewRequest("POST", l.url+"/api/v1/orgs/acme/releases", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+l.token)
			req.Header.Set("Content-Type", "application/json")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			problem, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != 400 || !strings.Contains(string(problem), `also named \"fw2.img\"`) {
				t.Errorf("release with two artifacts named fw2.img: %d %s, want 400", res.StatusCode, problem)
			}
			if again := readLog(t, l, v); again.size != second.size {
				t.Errorf("a refused release grew the log from %d to %d", second.size, again.size)
			}

			var cons tlog.ConsistencyResponse
			code, b := fetch(t, fmt.Sprintf("%s/tlog/acme/proof/consistency?old=%d&new=%d", l.url, first.size, second.size))
			if code != 200 || json.Unmarshal(b, &cons) != nil {
				t.Fatalf("consistency proof: %d %s", code, b)
			}
			if err := tlog.VerifyConsistency(first.size, second.size, first.root, second.root, cons.Hashes); err != nil {
				t.Fatal(err)
			}
		})
	}
}
