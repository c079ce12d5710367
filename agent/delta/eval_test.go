package delta

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// The tests in this file measure real image pairs for docs/deltas.md. They are skipped unless
// testdata/evaluate.sh runs them with file paths in the environment; the images stay out of the repo.
// Create and Apply run as separate processes so the peak RSS of Apply is not inflated by Create.

// TestEvalCreate makes a patch from $DELTA_EVAL_OLD to $DELTA_EVAL_NEW, prints its size and time, and
// writes it to $DELTA_EVAL_PATCH.
func TestEvalCreate(t *testing.T) {
	oldPath, newPath, patchPath := os.Getenv("DELTA_EVAL_OLD"), os.Getenv("DELTA_EVAL_NEW"), os.Getenv("DELTA_EVAL_PATCH")
	if oldPath == "" || newPath == "" || patchPath == "" {
		t.Skip("run by testdata/evaluate.sh: set DELTA_EVAL_OLD, DELTA_EVAL_NEW and DELTA_EVAL_PATCH")
	}
	oldImg, newImg := readFile(t, oldPath), readFile(t, newPath)
	var patch bytes.Buffer
	start := time.Now()
	st, err := Create(bytes.NewReader(oldImg), int64(len(oldImg)), bytes.NewReader(newImg), &patch, Options{})
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	// Parsed by evaluate.sh.
	t.Logf("EVAL create patch=%d new=%d seconds=%.3f", st.PatchSize, st.NewSize, elapsed.Seconds())
	if err := os.WriteFile(patchPath, patch.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestEvalApply applies $DELTA_EVAL_PATCH to $DELTA_EVAL_OLD into $DELTA_EVAL_OUT and prints the time
// and the bytes Apply allocated; evaluate.sh reads the process's peak RSS around it.
func TestEvalApply(t *testing.T) {
	oldPath, patchPath, outPath := os.Getenv("DELTA_EVAL_OLD"), os.Getenv("DELTA_EVAL_PATCH"), os.Getenv("DELTA_EVAL_OUT")
	if oldPath == "" || patchPath == "" || outPath == "" {
		t.Skip("run by testdata/evaluate.sh: set DELTA_EVAL_OLD, DELTA_EVAL_PATCH and DELTA_EVAL_OUT")
	}
	// Files, as on a device: the old image is read through io.ReaderAt, the patch and output streamed.
	old, err := os.Open(oldPath)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	fi, err := old.Stat()
	if err != nil {
		t.Fatal(err)
	}
	patch, err := os.Open(patchPath)
	if err != nil {
		t.Fatal(err)
	}
	defer patch.Close()
	out, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	if err := Apply(old, fi.Size(), patch, out, MaxImageSize); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	t.Logf("EVAL apply seconds=%.3f allocated=%d", elapsed.Seconds(), after.TotalAlloc-before.TotalAlloc)
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestEvalSynth writes the synthetic pair of BenchmarkDelta at $DELTA_EVAL_SYNTH_MIB MiB to
// $DELTA_EVAL_DIR/synth-N.old and .new, so evaluate.sh can give the same pair to the other tools.
func TestEvalSynth(t *testing.T) {
	mib, dir := os.Getenv("DELTA_EVAL_SYNTH_MIB"), os.Getenv("DELTA_EVAL_DIR")
	if mib == "" || dir == "" {
		t.Skip("run by testdata/evaluate.sh: set DELTA_EVAL_SYNTH_MIB and DELTA_EVAL_DIR")
	}
	n, err := strconv.Atoi(mib)
	if err != nil || n <= 0 || n > MaxImageSize>>20 {
		t.Fatalf("DELTA_EVAL_SYNTH_MIB=%q: want a size in MiB from 1 to %d", mib, MaxImageSize>>20)
	}
	oldImg, newImg := synthPair(1, n<<20)
	base := filepath.Join(dir, "synth-"+mib)
	if err := os.WriteFile(base+".old", oldImg, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(base+".new", newImg, 0o644); err != nil {
		t.Fatal(err)
	}
}
