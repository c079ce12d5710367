// Package delta makes and applies binary deltas between two firmware images, so a device that runs
// the precursor of a release downloads a patch instead of the whole new image.
//
// The new image is cut into segments of up to 1 MiB, and each segment is one zstd frame compressed with
// up to 4 MiB of the old image, around the same relative position, as a raw dictionary ("patch-from",
// as `zstd --patch-from` does): every part of the new image that also occurs in that part of the old
// one becomes a back-reference. An old image of up to 4 MiB is the whole dictionary of every segment.
// Apply accepts segments of up to 4 MiB with dictionaries of up to 16 MiB.
// Segmenting keeps patches small for large images (zstd's match tables have a fixed size, so a larger
// dictionary is indexed ever more sparsely) and bounds a device's memory whatever the image size.
// docs/deltas.md compares this with bsdiff on real binaries and records why it was chosen.
//
// Format (big-endian):
//
//	header:  magic "SDLT" | format version (1 byte) | old SHA-256 | new SHA-256 | old size (8) | new size (8)
//	segment: dictionary offset in the old image (8) | dictionary length (4) | segment length (4) |
//	         frame length (4) | zstd frame        ... repeated until the segments add up to the new size
//
// Apply refuses a patch made for another precursor (old hash), bounds its output, and hashes what it
// writes: on any error the output is unverified and the caller must discard it (write to a temporary
// file and rename only on success).
//
// Memory: Apply holds one dictionary (read through io.ReaderAt) and a window the size of one segment,
// about min(oldSize, 4 MiB) + min(newSize, 1 MiB) + 1 MiB for the patches Create makes (at most
// 16 + 4 + 1 MiB for any patch it accepts). Create holds both images, the patch, and an encoder with about 70 MiB of match tables. Images
// larger than MaxImageSize are refused.
package delta

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/bits"

	"github.com/klauspost/compress/zstd"
)

// MaxImageSize caps the old and the new image: Create holds both in memory.
const MaxImageSize = 256 << 20

// Format limits; Apply refuses a segment beyond them, which bounds its memory.
const (
	maxSegment = 4 << 20  // bytes of the new image per segment
	maxDict    = 16 << 20 // bytes of the old image one segment may use as its dictionary
)

// segmenting says how Create cuts the new image and how much of the old image each segment may use;
// tests use smaller values than the defaults to exercise moving dictionaries on small images.
type segmenting struct{ segment, dict int }

// Create's default keeps Apply within about 6 MiB, so an agent stays
// within 20 MB of RSS while it applies a 100 MB delta; on the 64 MiB
// synthetic pair the patch is as small as with 4 MiB segments and 16 MiB
// dictionaries (6.89 % vs 6.91 %). The format limits above stay, so
// patches made with larger values still apply.
var defaultSegmenting = segmenting{segment: 1 << 20, dict: 4 << 20}

// Sentinel errors; returned errors wrap them with details, so test with errors.Is.
var (
	// ErrTooLarge: an image exceeds MaxImageSize, or the patch would write more than the caller allows.
	ErrTooLarge = errors.New("delta: too large")
	// ErrWrongPrecursor: the patch was made for a different old image.
	ErrWrongPrecursor = errors.New("delta: patch is for a different old image")
	// ErrCorrupt: the patch is truncated, damaged or not a patch at all.
	ErrCorrupt = errors.New("delta: corrupt patch")
	// ErrMismatch: the patch decoded but did not produce the image its header promises.
	ErrMismatch = errors.New("delta: result does not match the patch header")
)

const (
	magic             = "SDLT"
	formatVersion     = 1
	headerSize        = len(magic) + 1 + 2*sha256.Size + 2*8
	segmentHeaderSize = 8 + 4 + 4 + 4
)

// Options tune Create. It has no settings yet: Create always uses zstd's strongest encoder, as a patch
// is made once on the server and downloaded by many devices over slow links. The faster encoders have
// smaller match tables that hold little of a multi-MiB dictionary; docs/deltas.md has their figures.
type Options struct{}

// Stats describes a patch Create wrote. The SHA-256 of the old image is the precursor digest a release
// records for the delta.
type Stats struct {
	OldSize, NewSize, PatchSize int64
	OldSHA256, NewSHA256        [sha256.Size]byte
}

// header is the fixed-size prefix of every patch.
type header struct {
	oldSHA, newSHA   [sha256.Size]byte
	oldSize, newSize int64
}

func (h *header) marshal() []byte {
	b := make([]byte, 0, headerSize)
	b = append(b, magic...)
	b = append(b, formatVersion)
	b = append(b, h.oldSHA[:]...)
	b = append(b, h.newSHA[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(h.oldSize))
	return binary.BigEndian.AppendUint64(b, uint64(h.newSize))
}

func readHeader(r io.Reader) (header, error) {
	var b [headerSize]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return header{}, fmt.Errorf("%w: truncated header", ErrCorrupt)
		}
		return header{}, fmt.Errorf("delta: reading patch header: %w", err)
	}
	if string(b[:len(magic)]) != magic {
		return header{}, fmt.Errorf("%w: not a Steward delta (bad magic)", ErrCorrupt)
	}
	p := b[len(magic):]
	if p[0] != formatVersion {
		return header{}, fmt.Errorf("%w: unsupported format version %d (this build reads %d)", ErrCorrupt, p[0], formatVersion)
	}
	p = p[1:]
	var h header
	copy(h.oldSHA[:], p)
	copy(h.newSHA[:], p[sha256.Size:])
	p = p[2*sha256.Size:]
	// Create never writes sizes above MaxImageSize (nor ones that would be negative as int64).
	oldSize, newSize := binary.BigEndian.Uint64(p), binary.BigEndian.Uint64(p[8:])
	if oldSize > MaxImageSize || newSize > MaxImageSize {
		return header{}, fmt.Errorf("%w: header declares a %d-byte old or %d-byte new image, above the %d-byte limit", ErrCorrupt, oldSize, newSize, MaxImageSize)
	}
	h.oldSize, h.newSize = int64(oldSize), int64(newSize)
	return h, nil
}

// readOld loads the old image into memory.
func readOld(old io.ReaderAt, oldSize int64) ([]byte, error) {
	if oldSize < 0 {
		return nil, fmt.Errorf("delta: negative old image size %d", oldSize)
	}
	if oldSize > MaxImageSize {
		return nil, fmt.Errorf("%w: old image is %d bytes, the limit is %d", ErrTooLarge, oldSize, MaxImageSize)
	}
	b := make([]byte, oldSize)
	if oldSize == 0 {
		return b, nil
	}
	if _, err := io.ReadFull(io.NewSectionReader(old, 0, oldSize), b); err != nil {
		return nil, fmt.Errorf("delta: reading old image: %w", err)
	}
	return b, nil
}

// dictFor picks the part of the old image a segment of the new image is compressed against: the whole
// old image if it fits, else a window around the same relative position, as parts of a rebuilt
// binary stay roughly in order.
func (sg segmenting) dictFor(start, length, oldSize, newSize int) (lo, hi int) {
	if oldSize <= sg.dict {
		return 0, oldSize
	}
	center := int((int64(start) + int64(length)/2) * int64(oldSize) / int64(newSize))
	lo = min(max(center-sg.dict/2, 0), oldSize-sg.dict)
	return lo, lo + sg.dict
}

// windowSize is the smallest power of two zstd accepts that reaches from the end of a segment back to
// the start of its dictionary, so no match in the dictionary is out of reach.
func windowSize(n int) int {
	return 1 << bits.Len(uint(max(n, zstd.MinWindowSize)-1))
}

// Create writes to w a patch that turns old (oldSize bytes) into the contents of new.
func Create(old io.ReaderAt, oldSize int64, new io.Reader, w io.Writer, opts Options) (Stats, error) {
	oldImg, err := readOld(old, oldSize)
	if err != nil {
		return Stats{}, err
	}
	// The header carries the new image's hash and size, so the whole image is read before encoding.
	newImg, err := io.ReadAll(io.LimitReader(new, MaxImageSize+1))
	if err != nil {
		return Stats{}, fmt.Errorf("delta: reading new image: %w", err)
	}
	if len(newImg) > MaxImageSize {
		return Stats{}, fmt.Errorf("%w: new image is over the %d-byte limit", ErrTooLarge, MaxImageSize)
	}
	patch, h, err := makePatch(oldImg, newImg, defaultSegmenting)
	if err != nil {
		return Stats{}, err
	}
	n, err := w.Write(patch)
	if err != nil {
		return Stats{}, fmt.Errorf("delta: writing patch: %w", err)
	}
	return Stats{OldSize: h.oldSize, NewSize: h.newSize, PatchSize: int64(n), OldSHA256: h.oldSHA, NewSHA256: h.newSHA}, nil
}

func makePatch(oldImg, newImg []byte, sg segmenting) ([]byte, header, error) {
	h := header{
		oldSHA:  sha256.Sum256(oldImg),
		newSHA:  sha256.Sum256(newImg),
		oldSize: int64(len(oldImg)),
		newSize: int64(len(newImg)),
	}
	patch := h.marshal()
	if len(newImg) == 0 {
		return patch, h, nil
	}
	// Every dictionary has the same length (the whole old image, or sg.dict bytes of it), so one
	// encoder serves all segments: only its dictionary changes, and only when the segment moves on
	// to another part of the old image.
	dictLen := min(len(oldImg), sg.dict)
	eopts := []zstd.EOption{
		zstd.WithEncoderLevel(zstd.SpeedBestCompression),
		zstd.WithWindowSize(windowSize(dictLen + sg.segment)),
		// Single segment: the frame declares a window of exactly the segment's size, so Apply can
		// refuse a frame that asks for more memory than the segment header announced.
		zstd.WithSingleSegment(true),
		zstd.WithEncoderConcurrency(1),
	}
	lo, hi := sg.dictFor(0, min(sg.segment, len(newImg)), len(oldImg), len(newImg))
	if hi > lo {
		// Dictionary id 0 is what `zstd --patch-from` writes: the frame names no dictionary.
		eopts = append(eopts, zstd.WithEncoderDictRaw(0, oldImg[lo:hi]))
	}
	enc, err := zstd.NewWriter(nil, eopts...)
	if err != nil {
		return nil, header{}, fmt.Errorf("delta: zstd encoder: %w", err)
	}
	defer enc.Close()
	encLo := lo
	for start := 0; start < len(newImg); start += sg.segment {
		seg := newImg[start:min(start+sg.segment, len(newImg))]
		lo, hi := sg.dictFor(start, len(seg), len(oldImg), len(newImg))
		if lo != encLo {
			if err := enc.ResetWithOptions(nil, zstd.WithEncoderDictRaw(0, oldImg[lo:hi])); err != nil {
				return nil, header{}, fmt.Errorf("delta: zstd encoder: %w", err)
			}
			encLo = lo
		}
		at := len(patch)
		patch = binary.BigEndian.AppendUint64(patch, uint64(lo))
		patch = binary.BigEndian.AppendUint32(patch, uint32(hi-lo))
		patch = binary.BigEndian.AppendUint32(patch, uint32(len(seg)))
		patch = binary.BigEndian.AppendUint32(patch, 0) // frame length, filled in below
		patch = enc.EncodeAll(seg, patch)
		binary.BigEndian.PutUint32(patch[at+16:], uint32(len(patch)-at-segmentHeaderSize))
	}
	return patch, h, nil
}

// Apply reads a patch and writes the new image to w, using old (oldSize bytes) as the precursor. It
// fails before writing anything if the patch is for another old image or declares more than maxOut
// bytes, and it never writes more than the declared size. On any error, what was written to w is
// unverified and must be discarded.
func Apply(old io.ReaderAt, oldSize int64, patch io.Reader, w io.Writer, maxOut int64) error {
	h, err := readHeader(patch)
	if err != nil {
		return err
	}
	if h.newSize > maxOut {
		return fmt.Errorf("%w: patch produces a %d-byte image, more than the %d bytes allowed", ErrTooLarge, h.newSize, maxOut)
	}
	if h.oldSize != oldSize {
		return fmt.Errorf("%w: patch needs a %d-byte old image, this one is %d bytes", ErrWrongPrecursor, h.oldSize, oldSize)
	}
	// Hash the old image as a stream: only the segments' dictionaries are held in memory.
	oldSum := sha256.New()
	switch n, err := io.Copy(oldSum, io.NewSectionReader(old, 0, oldSize)); {
	case err != nil:
		return fmt.Errorf("delta: reading old image: %w", err)
	case n != oldSize:
		return fmt.Errorf("delta: reading old image: it ends after %d of %d bytes", n, oldSize)
	}
	if !bytes.Equal(oldSum.Sum(nil), h.oldSHA[:]) {
		return fmt.Errorf("%w: patch needs old image sha256 %x", ErrWrongPrecursor, h.oldSHA)
	}

	a := applier{old: old, oldSize: oldSize, patch: patch, sum: sha256.New()}
	defer a.close()
	a.out = io.MultiWriter(markWriter{w}, a.sum)
	for written := int64(0); written < h.newSize; {
		n, err := a.segment(h.newSize - written)
		if err != nil {
			return fmt.Errorf("%w (segment at byte %d of the new image)", err, written)
		}
		written += n
	}
	var extra [1]byte
	if n, _ := io.ReadFull(patch, extra[:]); n > 0 {
		return fmt.Errorf("%w: data after the last segment", ErrCorrupt)
	}
	if got := a.sum.Sum(nil); !bytes.Equal(got, h.newSHA[:]) {
		return fmt.Errorf("%w: result sha256 %x, header says %x", ErrMismatch, got, h.newSHA)
	}
	return nil
}

// applier decodes a patch's segments one after another.
type applier struct {
	old     io.ReaderAt
	oldSize int64
	patch   io.Reader
	out     io.Writer
	sum     hash.Hash
	// Reused for every segment, so memory stays at one dictionary and one window.
	dict []byte
	dec  *zstd.Decoder
}

// decoder returns the decoder, reset to read frame with opts.
func (a *applier) decoder(frame io.Reader, opts []zstd.DOption) (*zstd.Decoder, error) {
	if a.dec != nil {
		return a.dec, a.dec.ResetWithOptions(frame, opts...)
	}
	// One block at a time: less memory on the device, and decoding is not the bottleneck there.
	dec, err := zstd.NewReader(frame, append(opts, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))...)
	if err != nil {
		return nil, err
	}
	a.dec = dec
	return dec, nil
}

func (a *applier) close() {
	if a.dec != nil {
		a.dec.Close()
	}
}

// segment decodes the next segment, which may produce at most left bytes, and returns its length.
func (a *applier) segment(left int64) (int64, error) {
	var b [segmentHeaderSize]byte
	if _, err := io.ReadFull(a.patch, b[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, fmt.Errorf("%w: truncated segment header", ErrCorrupt)
		}
		return 0, fmt.Errorf("delta: reading patch: %w", err)
	}
	dictOff := binary.BigEndian.Uint64(b[:])
	dictLen := int64(binary.BigEndian.Uint32(b[8:]))
	segLen := int64(binary.BigEndian.Uint32(b[12:]))
	frameLen := int64(binary.BigEndian.Uint32(b[16:]))
	switch {
	case dictLen > maxDict || dictOff > uint64(a.oldSize) || dictLen > a.oldSize-int64(dictOff):
		return 0, fmt.Errorf("%w: dictionary of %d bytes at %d is outside the %d-byte old image or over %d bytes", ErrCorrupt, dictLen, dictOff, a.oldSize, maxDict)
	case segLen == 0 || segLen > maxSegment || segLen > left:
		return 0, fmt.Errorf("%w: segment of %d bytes, with %d bytes of the image left and at most %d per segment", ErrCorrupt, segLen, left, maxSegment)
	}

	opts := []zstd.DOption{
		// The frame may not ask for a window beyond the segment (zstd's minimum is 1 KiB).
		zstd.WithDecoderMaxWindow(uint64(max(segLen, zstd.MinWindowSize))),
		zstd.WithDecoderMaxMemory(uint64(max(segLen, zstd.MinWindowSize))),
		// A segment without a dictionary must not see the previous segment's.
		zstd.WithDecoderDictDelete(0),
	}
	if dictLen > 0 {
		if int64(cap(a.dict)) < dictLen {
			a.dict = make([]byte, dictLen)
		}
		// The decoder is idle between segments, so the previous dictionary may be overwritten.
		a.dict = a.dict[:dictLen]
		if _, err := a.old.ReadAt(a.dict, int64(dictOff)); err != nil {
			return 0, fmt.Errorf("delta: reading old image: %w", err)
		}
		opts = append(opts, zstd.WithDecoderDictRaw(0, a.dict))
	}
	frame := &io.LimitedReader{R: a.patch, N: frameLen}
	dec, err := a.decoder(frame, opts)
	if err != nil {
		return 0, fmt.Errorf("delta: zstd decoder: %w", err)
	}

	n, err := io.Copy(a.out, io.LimitReader(dec, segLen))
	if err != nil {
		var werr writeError
		if errors.As(err, &werr) {
			return 0, fmt.Errorf("delta: writing new image: %w", werr.err)
		}
		return 0, fmt.Errorf("%w: after %d of %d bytes: %v", ErrCorrupt, n, segLen, err)
	}
	if n < segLen {
		return 0, fmt.Errorf("%w: frame ends after %d of the segment's %d bytes", ErrCorrupt, n, segLen)
	}
	// Reading on to the end makes the decoder check the frame's checksum and catches extra output.
	var extra [1]byte
	switch m, err := io.ReadFull(dec, extra[:]); {
	case m > 0:
		return 0, fmt.Errorf("%w: frame produces more than the segment's %d bytes", ErrCorrupt, segLen)
	case err != nil && !errors.Is(err, io.EOF):
		return 0, fmt.Errorf("%w: %v", ErrCorrupt, err)
	case frame.N > 0:
		return 0, fmt.Errorf("%w: frame ends %d bytes before its declared length", ErrCorrupt, frame.N)
	}
	return segLen, nil
}

// markWriter marks errors from the caller's writer, so Apply does not report them as a corrupt patch.
type markWriter struct{ w io.Writer }

type writeError struct{ err error }

func (e writeError) Error() string { return e.err.Error() }

func (m markWriter) Write(p []byte) (int, error) {
	n, err := m.w.Write(p)
	if err != nil {
		err = writeError{err}
	}
	return n, err
}
