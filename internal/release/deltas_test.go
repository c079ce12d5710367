package release_test

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/steward-iot/steward/agent/delta"
	"github.com/steward-iot/steward/internal/release"
	"github.com/steward-iot/steward/internal/store/storetest"
)

// image is n pseudo-random bytes from seed; edit changes a few hundred
// bytes the way a small fix changes a firmware image.
func image(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func edit(old []byte, seed uint64) []byte {
	b := bytes.Clone(old)
	r := rand.New(rand.NewPCG(seed, 1))
	for range 300 {
		b[r.IntN(len(b))] = byte(r.Uint32())
	}
	return append(b, image(seed, 2000)...)
}

// TestReleasesGetDeltas creates releases through the API and checks that
// each new full image gets a delta from the product's latest release,
// named by the precursor's digest, that turns the precursor into exactly
// the new image; and that no delta is made (or stored) when it would not
// pay off or is not wanted.
func TestReleasesGetDeltas(t *testing.T) {
	for _, d := range storetest.Dialects(t) {
		t.Run(string(d), func(t *testing.T) {
			e := newEnv(t, d)
			v1 := image(1, 256<<10)
			a1 := e.upload("fw.img", bytes.NewReader(v1), 201, "")
			var r1 release.Release
			e.json("POST", "/api/v1/orgs/acme/releases", release.CreateReleaseRequest{Product: "gw-100", Version: "1.0",
				Artifacts: []release.ArtifactRef{{ID: a1.ID}}}, 201, &r1)
			if len(r1.Artifacts) != 1 {
				t.Fatalf("first release has %d artifacts, want only its image", len(r1.Artifacts))
			}

			v2 := edit(v1, 2)
			a2 := e.upload("fw.img", bytes.NewReader(v2), 201, "")
			var r2 release.Release
			e.json("POST", "/api/v1/orgs/acme/releases", release.CreateReleaseRequest{Product: "gw-100", Version: "1.1",
				Artifacts: []release.ArtifactRef{{ID: a2.ID}}}, 201, &r2)
			if len(r2.Artifacts) != 2 || r2.Artifacts[1].Kind != release.KindDelta || r2.Artifacts[1].PrecursorSHA256 != a1.SHA256 {
				t.Fatalf("second release artifacts: %+v", r2.Artifacts)
			}
			patch := r2.Artifacts[1]
			if patch.Size*10 > int64(len(v2)) {
				t.Errorf("delta is %d bytes for a %d-byte image with a small change", patch.Size, len(v2))
			}
			res := e.do("GET", "/api/v1/orgs/acme/artifacts/"+patch.ID+"/content", nil, "")
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			var out bytes.Buffer
			if err := delta.Apply(bytes.NewReader(v1), int64(len(v1)), bytes.NewReader(body), &out, 1<<30); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), v2) {
				t.Fatal("the delta applied to 1.0 does not give 1.1")
			}
			t.Logf("delta 1.0→1.1: %d bytes for a %d-byte image (%.1f%%)", patch.Size, len(v2), 100*float64(patch.Size)/float64(len(v2)))

			// Not wanted: none made.
			v3 := edit(v2, 3)
			a3 := e.upload("fw.img", bytes.NewReader(v3), 201, "")
			var r3 release.Release
			e.json("POST", "/api/v1/orgs/acme/releases", release.CreateReleaseRequest{Product: "gw-100", Version: "1.2",
				Artifacts: []release.ArtifactRef{{ID: a3.ID}}, NoDeltas: true}, 201, &r3)
			if len(r3.Artifacts) != 1 {
				t.Fatalf("no_deltas release has %d artifacts", len(r3.Artifacts))
			}
			// An unrelated image: the patch would not pay off, and nothing is stored.
			before, _ := e.blobFiles()
			count := e.artifactCount()
			a4 := e.upload("fw.img", bytes.NewReader(image(4, 256<<10)), 201, "")
			var r4 release.Release
			e.json("POST", "/api/v1/orgs/acme/releases", release.CreateReleaseRequest{Product: "gw-100", Version: "2.0",
				Artifacts: []release.ArtifactRef{{ID: a4.ID}}}, 201, &r4)
			if after, _ := e.blobFiles(); len(r4.Artifacts) != 1 || after != before+1 || e.artifactCount() != count+1 {
				t.Fatalf("unrelated image: %d artifacts, blobs %d → %d", len(r4.Artifacts), before, after)
			}
			// A refused release (duplicate version) leaves no delta behind.
			a5 := e.upload("fw.img", bytes.NewReader(edit(image(4, 256<<10), 5)), 201, "")
			before, _ = e.blobFiles()
			e.json("POST", "/api/v1/orgs/acme/releases", release.CreateReleaseRequest{Product: "gw-100", Version: "2.0",
				Artifacts: []release.ArtifactRef{{ID: a5.ID}}}, 409, nil)
			if after, _ := e.blobFiles(); after != before {
				t.Fatalf("a refused release stored %d blobs", after-before)
			}
		})
	}
}
