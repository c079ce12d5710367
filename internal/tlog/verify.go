package tlog

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// These functions are the client side: steward ctl and devices verify what
// a log served without trusting the server. The log builds proofs with
// golang.org/x/mod/sumdb/tlog; they are checked here with the independent
// github.com/transparency-dev/merkle, so both must implement RFC 6962 alike.

// formatCheckpoint returns the checkpoint note text for a tree.
func formatCheckpoint(origin string, size int64, root Hash) string {
	return fmt.Sprintf("%s\n%d\n%s\n", origin, size, base64.StdEncoding.EncodeToString(root[:]))
}

// checkpoint is the parsed note text of a checkpoint.
type checkpoint struct {
	origin string
	size   int64
	root   Hash
}

// parseCheckpoint parses checkpoint note text strictly: exactly one
// spelling of each size and root is accepted, and extension lines must be
// non-empty (they are otherwise ignored).
func parseCheckpoint(text string) (checkpoint, error) {
	body, ok := strings.CutSuffix(text, "\n")
	if !ok {
		return checkpoint{}, errors.New("tlog: checkpoint text does not end in a newline")
	}
	lines := strings.Split(body, "\n")
	if len(lines) < 3 {
		return checkpoint{}, fmt.Errorf("tlog: checkpoint has %d lines, want at least 3", len(lines))
	}
	for i, line := range lines {
		if line == "" {
			return checkpoint{}, fmt.Errorf("tlog: checkpoint line %d is empty", i+1)
		}
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return checkpoint{}, fmt.Errorf("tlog: checkpoint tree size %q is not a decimal number", lines[1])
	}
	var root Hash
	raw, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(raw) != HashSize || base64.StdEncoding.EncodeToString(raw) != lines[2] {
		return checkpoint{}, fmt.Errorf("tlog: checkpoint root hash %q is not %d bytes in base64", lines[2], HashSize)
	}
	copy(root[:], raw)
	return checkpoint{origin: lines[0], size: size, root: root}, nil
}

// VerifyCheckpoint checks that signed is a checkpoint of the log named
// origin with a valid signature by verifier, and returns its tree size and
// root hash. Signatures by other keys (witnesses) are ignored.
func VerifyCheckpoint(signed []byte, verifier note.Verifier, origin string) (size int64, root Hash, err error) {
	if verifier == nil {
		return 0, Hash{}, errors.New("tlog: no checkpoint verifier")
	}
	n, err := note.Open(signed, note.VerifierList(verifier))
	if err != nil {
		return 0, Hash{}, fmt.Errorf("tlog: checkpoint not signed by %s: %w", verifier.Name(), err)
	}
	cp, err := parseCheckpoint(n.Text)
	if err != nil {
		return 0, Hash{}, err
	}
	if cp.origin != origin {
		return 0, Hash{}, fmt.Errorf("tlog: checkpoint is from log %q, want %q", cp.origin, origin)
	}
	return cp.size, cp.root, nil
}

// VerifyInclusion checks that leaf is entry index of the tree of the given
// size and root, using an inclusion proof from Log.InclusionProof.
func VerifyInclusion(leaf []byte, index, size int64, root Hash, p []Hash) error {
	if index < 0 || index >= size {
		return fmt.Errorf("tlog: entry %d is not in a tree of size %d", index, size)
	}
	h := rfc6962.DefaultHasher
	if err := proof.VerifyInclusion(h, uint64(index), uint64(size), h.HashLeaf(leaf), byteSlices(p), root[:]); err != nil {
		return fmt.Errorf("tlog: entry %d not proven in tree of size %d: %w", index, size, err)
	}
	return nil
}

// VerifyConsistency checks that the tree of oldSize with oldRoot is a
// prefix of the tree of newSize with newRoot, using a consistency proof
// from Log.ConsistencyProof.
func VerifyConsistency(oldSize, newSize int64, oldRoot, newRoot Hash, p []Hash) error {
	if oldSize < 0 || oldSize > newSize {
		return fmt.Errorf("tlog: no consistency proof from tree size %d to %d", oldSize, newSize)
	}
	err := proof.VerifyConsistency(rfc6962.DefaultHasher, uint64(oldSize), uint64(newSize), byteSlices(p), oldRoot[:], newRoot[:])
	if err != nil {
		return fmt.Errorf("tlog: tree of size %d not proven a prefix of tree of size %d: %w", oldSize, newSize, err)
	}
	return nil
}

func byteSlices(hashes []Hash) [][]byte {
	out := make([][]byte, len(hashes))
	for i := range hashes {
		out[i] = hashes[i][:]
	}
	return out
}
