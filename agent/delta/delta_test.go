package delta

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func create(t testing.TB, oldImg, newImg []byte, opts Options) ([]byte, Stats) {
	t.Helper()
	var patch bytes.Buffer
	st, err := Create(bytes.NewReader(oldImg), int64(len(oldImg)), bytes.NewReader(newImg), &patch, opts)
	if err != nil {
		t.Fatal(err)
	}
	return patch.Bytes(), st
}

func apply(oldImg, patch []byte, maxOut int64) ([]byte, error) {
	var out bytes.Buffer
	err := Apply(bytes.NewReader(oldImg), int64(len(oldImg)), bytes.NewReader(patch), &out, maxOut)
	return out.Bytes(), err
}

func TestRoundTrip(t *testing.T) {
	synthOld, synthNew := synthPair(1, 256<<10)
	random := func(n int, seed byte) []byte {
		b := make([]byte, n)
		for i := range b {
			seed = seed*167 + 13
			b[i] = seed ^ byte(i>>7)
		}
		return b
	}
	cases := []struct {
		name     string
		old, new []byte
	}{
		{"binary pair", synthOld, synthNew},
		{"identical", synthOld, synthOld},
		{"unrelated", random(100<<10, 1), random(90<<10, 2)},
		{"new much larger", random(3000, 3), append(random(3000, 3), synthNew...)},
		{"empty old", nil, synthNew[:5000]},
		{"empty new", synthOld[:5000], nil},
		{"both empty", nil, nil},
		{"tiny", []byte("abc"), []byte("abd")},
		{"one-byte old", []byte{7}, bytes.Repeat([]byte{7}, 2000)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			patch, st := create(t, c.old, c.new, Options{})
			want := Stats{
				OldSize: int64(len(c.old)), NewSize: int64(len(c.new)), PatchSize: int64(len(patch)),
				OldSHA256: sha256.Sum256(c.old), NewSHA256: sha256.Sum256(c.new),
			}
			if st != want {
				t.Errorf("stats = %+v, want %+v", st, want)
			}
			got, err := apply(c.old, patch, int64(len(c.new)))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, c.new) {
				t.Fatalf("Apply produced %d bytes that differ from the %d-byte new image", len(got), len(c.new))
			}
		})
	}
}

// TestWindowReachesStartOfOld checks that a new image that is the old one reversed in halves, so each
// half must be copied from the far end of the dictionary, still becomes a small patch.
func TestWindowReachesStartOfOld(t *testing.T) {
	oldImg, _ := synthPair(3, 1<<20)
	half := len(oldImg) / 2
	newImg := append(append([]byte(nil), oldImg[half:]...), oldImg[:half]...)
	patch, _ := create(t, oldImg, newImg, Options{})
	if len(patch) > 4096 {
		t.Errorf("patch for a rotated image is %d bytes; matches in the old image were out of reach", len(patch))
	}
	if got, err := apply(oldImg, patch, MaxImageSize); err != nil || !bytes.Equal(got, newImg) {
		t.Fatalf("round trip failed: %v", err)
	}
}

// TestSegments cuts a 512 KiB pair into 64 KiB segments with 256 KiB dictionaries, as Create does
// with a 128 MiB pair: dictionaries must follow the segments through the old image, and the patch must
// stay close to one made with the whole old image as dictionary.
func TestSegments(t *testing.T) {
	oldImg, newImg := synthPair(13, 512<<10)
	small, _, err := makePatch(oldImg, newImg, segmenting{segment: 64 << 10, dict: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	whole, _, err := makePatch(oldImg, newImg, defaultSegmenting)
	if err != nil {
		t.Fatal(err)
	}
	got, err := apply(oldImg, small, int64(len(newImg)))
	if err != nil || !bytes.Equal(got, newImg) {
		t.Fatalf("round trip failed: %v", err)
	}
	offsets := map[uint64]bool{}
	segments := 0
	for p := small[headerSize:]; len(p) > 0; segments++ {
		offsets[binary.BigEndian.Uint64(p)] = true
		p = p[segmentHeaderSize+int(binary.BigEndian.Uint32(p[16:])):]
	}
	if want := (len(newImg) + 64<<10 - 1) / (64 << 10); segments != want || len(offsets) < segments/2 {
		t.Errorf("%d segments with %d distinct dictionary offsets, want %d segments with moving dictionaries", segments, len(offsets), want)
	}
	if len(small) > len(whole)*13/10 {
		t.Errorf("segmented patch is %d bytes, the whole-image one %d", len(small), len(whole))
	}
	t.Logf("segmented patch %d bytes, whole-image dictionary %d bytes, new image %d bytes", len(small), len(whole), len(newImg))
}

// TestBodyIsZstdPatchFrom checks the claim in docs/deltas.md that a segment's frame is an ordinary
// zstd frame that `zstd -d --patch-from=DICTIONARY` decodes; a small image has one segment whose
// dictionary is the whole old image.
func TestBodyIsZstdPatchFrom(t *testing.T) {
	zstdCLI, err := exec.LookPath("zstd")
	if err != nil {
		t.Skip("zstd CLI not installed")
	}
	oldImg, newImg := synthPair(4, 128<<10)
	patch, _ := create(t, oldImg, newImg, Options{})
	dir := t.TempDir()
	oldPath, bodyPath, outPath := filepath.Join(dir, "old"), filepath.Join(dir, "body.zst"), filepath.Join(dir, "out")
	if err := os.WriteFile(oldPath, oldImg, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bodyPath, patch[headerSize+segmentHeaderSize:], 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(zstdCLI, "-q", "-d", "--patch-from="+oldPath, bodyPath, "-o", outPath).CombinedOutput(); err != nil {
		t.Fatalf("zstd -d --patch-from: %v\n%s", err, out)
	}
	if got, err := os.ReadFile(outPath); err != nil || !bytes.Equal(got, newImg) {
		t.Fatalf("zstd CLI output differs from the new image (%v)", err)
	}
}

func TestApplyWrongPrecursor(t *testing.T) {
	oldImg, newImg := synthPair(5, 64<<10)
	patch, _ := create(t, oldImg, newImg, Options{})

	sameSize := append([]byte(nil), oldImg...)
	sameSize[len(sameSize)/2] ^= 1
	for name, other := range map[string][]byte{
		"one byte differs": sameSize,
		"shorter":          oldImg[:len(oldImg)-1],
		"empty":            nil,
		"the new image":    newImg,
	} {
		t.Run(name, func(t *testing.T) {
			out, err := apply(other, patch, MaxImageSize)
			if !errors.Is(err, ErrWrongPrecursor) {
				t.Fatalf("err = %v, want ErrWrongPrecursor", err)
			}
			if len(out) != 0 {
				t.Errorf("wrote %d bytes before refusing", len(out))
			}
		})
	}
}

func TestApplyMaxOut(t *testing.T) {
	oldImg, newImg := synthPair(6, 64<<10)
	patch, _ := create(t, oldImg, newImg, Options{})
	out, err := apply(oldImg, patch, int64(len(newImg))-1)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	if len(out) != 0 {
		t.Errorf("wrote %d bytes before refusing", len(out))
	}
	if _, err := apply(oldImg, patch, int64(len(newImg))); err != nil {
		t.Fatalf("maxOut equal to the new size: %v", err)
	}
}

// TestApplyFlippedByte flips every byte of a small patch in turn. Each must be refused, unless the flip
// does not change the decoded image (a few bits of a zstd frame do not affect what it decodes to): the
// result is verified, so the correct image is then all that can pass.
func TestApplyFlippedByte(t *testing.T) {
	oldImg, newImg := synthPair(7, 16<<10)
	newImg = newImg[:12<<10]
	patch, _ := create(t, oldImg, newImg, Options{})
	harmless := 0
	for i := range patch {
		bad := append([]byte(nil), patch...)
		bad[i] ^= 0x40
		out, err := apply(oldImg, bad, MaxImageSize)
		if err == nil {
			if !bytes.Equal(out, newImg) {
				t.Fatalf("flipping byte %d of %d: Apply returned a wrong image without an error", i, len(patch))
			}
			harmless++
			continue
		}
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrMismatch) && !errors.Is(err, ErrWrongPrecursor) && !errors.Is(err, ErrTooLarge) {
			t.Fatalf("flipping byte %d: unclassified error %v", i, err)
		}
		if len(out) > len(newImg) {
			t.Fatalf("flipping byte %d: wrote %d bytes, more than the %d declared", i, len(out), len(newImg))
		}
	}
	if harmless > len(patch)/100 {
		t.Errorf("%d of %d flipped bytes went unnoticed", harmless, len(patch))
	}
	t.Logf("%d of %d flips refused, %d did not change the image", len(patch)-harmless, len(patch), harmless)
}

func TestApplyTruncated(t *testing.T) {
	oldImg, newImg := synthPair(8, 32<<10)
	patch, _ := create(t, oldImg, newImg, Options{})
	for n := range len(patch) {
		_, err := apply(oldImg, patch[:n], MaxImageSize)
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("patch cut to %d of %d bytes: err = %v, want ErrCorrupt", n, len(patch), err)
		}
	}
}

func TestApplyTrailingData(t *testing.T) {
	oldImg, newImg := synthPair(9, 64<<10)
	patch, _ := create(t, oldImg, newImg, Options{})
	if _, err := apply(oldImg, append(patch, 0), MaxImageSize); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("patch with a trailing byte: err = %v, want ErrCorrupt", err)
	}
}

func TestApplyBadHeader(t *testing.T) {
	oldImg, newImg := synthPair(10, 64<<10)
	patch, _ := create(t, oldImg, newImg, Options{})
	edit := func(f func(b []byte)) []byte {
		b := append([]byte(nil), patch...)
		f(b)
		return b
	}
	const newSizeAt = headerSize - 8
	seg := headerSize // the first segment header
	setSeg := func(off, width int, v uint64) []byte {
		return edit(func(b []byte) {
			if width == 8 {
				binary.BigEndian.PutUint64(b[seg+off:], v)
			} else {
				binary.BigEndian.PutUint32(b[seg+off:], uint32(v))
			}
		})
	}
	for name, c := range map[string]struct {
		patch []byte
		want  error
	}{
		"not a patch":    {[]byte("this is not a patch, just text that is long enough to fill a header........................"), ErrCorrupt},
		"future version": {edit(func(b []byte) { b[4] = 2 }), ErrCorrupt},
		"wrong new hash": {edit(func(b []byte) { b[5+sha256.Size] ^= 1 }), ErrMismatch},
		"size too small": {edit(func(b []byte) { binary.BigEndian.PutUint64(b[newSizeAt:], uint64(len(newImg)-1)) }), ErrCorrupt},
		"size too large": {edit(func(b []byte) { binary.BigEndian.PutUint64(b[newSizeAt:], uint64(len(newImg)+1)) }), ErrCorrupt},
		"size over cap":  {edit(func(b []byte) { binary.BigEndian.PutUint64(b[newSizeAt:], MaxImageSize+1) }), ErrCorrupt},
		"size negative":  {edit(func(b []byte) { binary.BigEndian.PutUint64(b[newSizeAt:], 1<<63) }), ErrCorrupt},
		// Segment headers.
		"dictionary past the old image": {setSeg(0, 8, uint64(len(oldImg))), ErrCorrupt},
		"dictionary offset overflows":   {setSeg(0, 8, 1<<63), ErrCorrupt},
		"dictionary too long":           {setSeg(8, 4, uint64(len(oldImg)+1)), ErrCorrupt},
		"empty segment":                 {setSeg(12, 4, 0), ErrCorrupt},
		"segment over the limit":        {setSeg(12, 4, maxSegment+1), ErrCorrupt},
		"segment shorter than frame":    {setSeg(12, 4, uint64(len(newImg)-1)), ErrCorrupt},
		"frame length too short":        {setSeg(16, 4, 10), ErrCorrupt},
		"frame length too long":         {setSeg(16, 4, uint64(len(patch))), ErrCorrupt},
	} {
		t.Run(name, func(t *testing.T) {
			out, err := apply(oldImg, c.patch, MaxImageSize)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if declared := binary.BigEndian.Uint64(patch[newSizeAt:]); uint64(len(out)) > declared {
				t.Errorf("wrote %d bytes, more than the %d declared", len(out), declared)
			}
		})
	}
}

// TestApplyBomb: a patch whose headers declare a small image but whose frame expands to 16 MiB must
// be refused having written at most the declared size and without allocating for the full output.
func TestApplyBomb(t *testing.T) {
	oldImg := []byte("precursor image")
	const declared = 1000
	huge := make([]byte, 16<<20)
	h := header{oldSHA: sha256.Sum256(oldImg), newSHA: sha256.Sum256(huge[:declared]), oldSize: int64(len(oldImg)), newSize: declared}

	// A single-segment frame announces its size and is refused by the window limit; a streamed frame
	// with a small window is cut off after the declared size.
	single, err := zstd.NewWriter(nil, zstd.WithSingleSegment(true))
	if err != nil {
		t.Fatal(err)
	}
	var streamed bytes.Buffer
	sw, err := zstd.NewWriter(&streamed, zstd.WithWindowSize(zstd.MinWindowSize))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sw.Write(huge); err != nil {
		t.Fatal(err)
	}
	if err := sw.Close(); err != nil {
		t.Fatal(err)
	}
	for name, frame := range map[string][]byte{"single segment": single.EncodeAll(huge, nil), "streamed": streamed.Bytes()} {
		t.Run(name, func(t *testing.T) {
			patch := segmentHeader(h.marshal(), 0, len(oldImg), declared, len(frame))
			patch = append(patch, frame...)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			out, err := apply(oldImg, patch, MaxImageSize)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err = %v, want ErrCorrupt", err)
			}
			if len(out) > declared {
				t.Errorf("wrote %d bytes, more than the %d declared", len(out), declared)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
				t.Errorf("allocated %d bytes for a %d-byte declared image", alloc, declared)
			}
		})
	}
}

func segmentHeader(b []byte, dictOff, dictLen, segLen, frameLen int) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(dictOff))
	b = binary.BigEndian.AppendUint32(b, uint32(dictLen))
	b = binary.BigEndian.AppendUint32(b, uint32(segLen))
	return binary.BigEndian.AppendUint32(b, uint32(frameLen))
}

type failingWriter struct{ n int }

var errDiskFull = errors.New("disk full")

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.n < len(p) {
		return 0, errDiskFull
	}
	f.n -= len(p)
	return len(p), nil
}

func TestApplyWriteError(t *testing.T) {
	oldImg, newImg := synthPair(11, 64<<10)
	patch, _ := create(t, oldImg, newImg, Options{})
	err := Apply(bytes.NewReader(oldImg), int64(len(oldImg)), bytes.NewReader(patch), &failingWriter{n: 1000}, MaxImageSize)
	if !errors.Is(err, errDiskFull) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("err = %v, want the writer's error and not ErrCorrupt", err)
	}
}

// errReaderAt fails every read: the size checks must come first.
type errReaderAt struct{}

func (errReaderAt) ReadAt([]byte, int64) (int, error) { return 0, errors.New("unexpected read") }

func TestSizeLimits(t *testing.T) {
	if _, err := Create(errReaderAt{}, MaxImageSize+1, bytes.NewReader(nil), io.Discard, Options{}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Create with an oversized old image: err = %v, want ErrTooLarge", err)
	}
	if _, err := Create(errReaderAt{}, -1, bytes.NewReader(nil), io.Discard, Options{}); err == nil {
		t.Error("Create accepted a negative old size")
	}
	oldImg, newImg := synthPair(12, 16<<10)
	patch, _ := create(t, oldImg, newImg, Options{})
	if err := Apply(errReaderAt{}, MaxImageSize+1, bytes.NewReader(patch), io.Discard, MaxImageSize); !errors.Is(err, ErrWrongPrecursor) {
		t.Errorf("Apply with an oversized old image: err = %v, want ErrWrongPrecursor (size differs from the header)", err)
	}
	// A short old image source is an I/O error, not a silently shorter dictionary.
	short := io.NewSectionReader(bytes.NewReader(oldImg), 0, int64(len(oldImg))-1)
	if err := Apply(short, int64(len(oldImg)), bytes.NewReader(patch), io.Discard, MaxImageSize); err == nil || errors.Is(err, ErrCorrupt) {
		t.Errorf("Apply with a short old image: err = %v, want a read error", err)
	}
}
