package delta

import (
	"bytes"
	"io"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// BenchmarkDelta measures Create and Apply on a synthetic 4 MiB pair shaped like two builds of one
// binary (see synthPair), and reports the patch's size as a fraction of the new image ("patch/new");
// "full" is the new image compressed alone, what a device without a delta downloads.
// Real binaries are measured by testdata/evaluate.sh (docs/deltas.md).
func BenchmarkDelta(b *testing.B) {
	oldImg, newImg := synthPair(1, 4<<20)

	b.Run("full", func(b *testing.B) {
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBestCompression), zstd.WithEncoderConcurrency(1))
		if err != nil {
			b.Fatal(err)
		}
		defer enc.Close()
		b.SetBytes(int64(len(newImg)))
		var out []byte
		for b.Loop() {
			out = enc.EncodeAll(newImg, out[:0])
		}
		b.ReportMetric(float64(len(out))/float64(len(newImg)), "patch/new")
	})

	b.Run("create", func(b *testing.B) {
		b.SetBytes(int64(len(newImg)))
		var st Stats
		for b.Loop() {
			var err error
			st, err = Create(bytes.NewReader(oldImg), int64(len(oldImg)), bytes.NewReader(newImg), io.Discard, Options{})
			if err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(st.PatchSize)/float64(len(newImg)), "patch/new")
	})

	// B/op is Apply's memory: the old image, a window the size of the new one, and the decoder.
	b.Run("apply", func(b *testing.B) {
		patch, _ := create(b, oldImg, newImg, Options{})
		b.SetBytes(int64(len(newImg)))
		b.ReportAllocs()
		for b.Loop() {
			if err := Apply(bytes.NewReader(oldImg), int64(len(oldImg)), bytes.NewReader(patch), io.Discard, MaxImageSize); err != nil {
				b.Fatal(err)
			}
		}
	})
}
