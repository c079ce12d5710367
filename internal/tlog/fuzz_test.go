package tlog

import (
	"context"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// FuzzVerifyCheckpoint feeds arbitrary bytes to the checkpoint verifier and
// parser: they must never panic, and whatever they accept must be the one
// spelling formatCheckpoint writes, followed only by extension lines.
func FuzzVerifyCheckpoint(f *testing.F) {
	fx := newFixture(f)
	l, s, v := fx.log, fx.signer, fx.verifier
	witness, _ := newKey(f, "witness.example")
	ctx := context.Background()
	for _, e := range []Entry{
		{Kind: KindMetadata, Org: "acme", Role: "root", MetadataVersion: 1, SHA256: shaA},
		{Kind: KindRelease, Org: "acme", Product: "gw", Version: "1", ReleaseCounter: 1, Artifacts: []Artifact{{Name: "img", SHA256: shaB}}},
	} {
		cp, err := l.Checkpoint(ctx)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(cp)
		if _, err := l.Append(ctx, e); err != nil {
			f.Fatal(err)
		}
	}
	cp, err := l.Checkpoint(ctx)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(cp)
	n, err := note.Open(cp, note.VerifierList(v))
	if err != nil {
		f.Fatal(err)
	}
	cosigned, err := note.Sign(n, witness)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(cosigned)
	ext, err := note.Sign(&note.Note{Text: n.Text + "extension\n"}, s)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ext)
	f.Add([]byte(n.Text))
	f.Add([]byte("\n\n— \n"))
	f.Add([]byte(testOrigin + "\n01\nAAAA\n\n— " + testOrigin + " AAAAAAA=\n"))

	f.Fuzz(func(t *testing.T, data []byte) {
		size, root, err := VerifyCheckpoint(data, v, testOrigin)
		if err == nil {
			n, err := note.Open(data, note.VerifierList(v))
			if err != nil {
				t.Fatalf("VerifyCheckpoint accepted what note.Open rejects: %v", err)
			}
			if !strings.HasPrefix(n.Text, formatCheckpoint(testOrigin, size, root)) {
				t.Fatalf("accepted text %q does not start with its canonical form", n.Text)
			}
		}
		cp, err := parseCheckpoint(string(data))
		if err != nil {
			return
		}
		canon := formatCheckpoint(cp.origin, cp.size, cp.root)
		if !strings.HasPrefix(string(data), canon) {
			t.Fatalf("parsed %q as %+v, which formats as %q", data, cp, canon)
		}
		// Whatever follows must be non-empty, newline-terminated extension lines.
		if rest := strings.TrimPrefix(string(data), canon); rest != "" && (strings.Contains(rest, "\n\n") || rest[0] == '\n' || !strings.HasSuffix(rest, "\n")) {
			t.Fatalf("accepted empty or unterminated extension lines in %q", data)
		}
	})
}
