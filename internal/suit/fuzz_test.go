package suit

import (
	"path/filepath"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/veraison/go-cose"
)

// FuzzDecode checks that no input makes Decode panic, and that it returns
// either a manifest or an error. Seeds: the draft's examples and an
// envelope of our own.
func FuzzDecode(f *testing.F) {
	key := exampleKey(f)
	signer, es := es256(f, key)
	esp, err := NewESP256Verifier(&key.PublicKey)
	if err != nil {
		f.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join("testdata", "*.hex"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed envelopes: %v", err)
	}
	for _, file := range files {
		f.Add(loadHex(f, filepath.Base(file)))
	}
	env, err := Encode(typical(f), signer)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(env)
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, v := range []cose.Verifier{es, esp} {
			m, err := Decode(data, v)
			if (m == nil) == (err == nil) {
				t.Fatalf("Decode returned manifest %v and error %v", m, err)
			}
		}
	})
}

// FuzzDecodeManifest signs arbitrary manifest bytes so that the fuzzer
// reaches the manifest parser behind the signature check.
func FuzzDecodeManifest(f *testing.F) {
	signer, verifier := newEd25519(f)
	f.Add(must(encodeManifest(typical(f))))
	for _, file := range []string{"example0-draft24.hex", "example1-draft27.hex"} {
		var env envelopeMap
		var tag cbor.RawTag
		if err := cbor.Unmarshal(loadHex(f, file), &tag); err != nil {
			f.Fatal(err)
		}
		if err := cbor.Unmarshal(tag.Content, &env); err != nil {
			f.Fatal(err)
		}
		f.Add(must(bstr(env.Manifest, "manifest")))
	}
	f.Fuzz(func(t *testing.T, manifest []byte) {
		env, err := seal(manifest, signer)
		if err != nil {
			t.Fatal(err)
		}
		m, err := Decode(env, verifier)
		if (m == nil) == (err == nil) {
			t.Fatalf("Decode returned manifest %v and error %v", m, err)
		}
	})
}
