package suit

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/fxamacker/cbor/v2"
	"github.com/veraison/go-cose"
)

// encMode writes RFC 8949 core deterministic CBOR, which the draft requires
// for every map in the envelope ("Encoding Considerations").
var encMode = func() cbor.EncMode {
	em, err := cbor.EncOptions{
		Sort:        cbor.SortCoreDeterministic,
		IndefLength: cbor.IndefLengthForbidden,
	}.EncMode()
	if err != nil {
		panic(err)
	}
	return em
}()

// suitDigest is SUIT_Digest: [algorithm-id, digest-bytes].
type suitDigest struct {
	_     struct{} `cbor:",toarray"`
	Alg   int64
	Bytes []byte
}

// Encode builds and signs the SUIT envelope for m. signer's algorithm goes
// into the COSE_Sign1 protected header; ES256 (P-256) and EdDSA (Ed25519)
// signers from go-cose both work.
//
// The layout is the draft's Example 1: the shared sequence sets vendor id,
// class id, image digest and size and checks vendor and class; validate
// checks the image; install sets the URI, fetches and checks the image.
func Encode(m Manifest, signer cose.Signer) ([]byte, error) {
	if signer == nil {
		return nil, errors.New("suit: nil signer")
	}
	manifest, err := encodeManifest(m)
	if err != nil {
		return nil, err
	}
	return seal(manifest, signer)
}

func validate(m Manifest) error {
	if len(m.ComponentID) == 0 {
		return fmt.Errorf("%w: component identifier is empty", ErrInvalidManifest)
	}
	// The draft ("Constructing UUIDs") allows UUID versions 3, 4 and 5 only;
	// anything else is almost surely an unset or mangled field.
	for _, id := range []struct {
		name string
		v    [16]byte
	}{{"vendor id", m.VendorID}, {"class id", m.ClassID}} {
		if v := id.v[6] >> 4; v < 3 || v > 5 {
			return fmt.Errorf("%w: %s is not a version 3, 4 or 5 UUID", ErrInvalidManifest, id.name)
		}
	}
	if m.ImageDigest == ([32]byte{}) {
		return fmt.Errorf("%w: image digest is unset", ErrInvalidManifest)
	}
	if m.ImageSize == 0 {
		return fmt.Errorf("%w: image size is zero", ErrInvalidManifest)
	}
	if m.URI == "" {
		return fmt.Errorf("%w: URI is empty", ErrInvalidManifest)
	}
	return nil
}

// encodeManifest returns the encoded SUIT_Manifest (not yet bstr-wrapped).
func encodeManifest(m Manifest) ([]byte, error) {
	if err := validate(m); err != nil {
		return nil, err
	}
	imageDigest, err := encMode.Marshal(suitDigest{Alg: algSHA256, Bytes: m.ImageDigest[:]})
	if err != nil {
		return nil, err
	}
	shared, err := encMode.Marshal([]any{
		dirOverrideParams, map[int]any{
			paramVendorID:    m.VendorID[:],
			paramClassID:     m.ClassID[:],
			paramImageDigest: imageDigest,
			paramImageSize:   m.ImageSize,
		},
		condVendorID, reportAll,
		condClassID, reportAll,
	})
	if err != nil {
		return nil, err
	}
	common, err := encMode.Marshal(map[int]any{
		commonComponents: [][][]byte{m.ComponentID},
		commonShared:     shared,
	})
	if err != nil {
		return nil, err
	}
	validateSeq, err := encMode.Marshal([]any{condImageMatch, reportAll})
	if err != nil {
		return nil, err
	}
	install, err := encMode.Marshal([]any{
		dirOverrideParams, map[int]any{paramURI: m.URI},
		dirFetch, reportRecordOnFail,
		condImageMatch, reportAll,
	})
	if err != nil {
		return nil, err
	}
	return encMode.Marshal(map[int]any{
		manVersion:  manifestVersion,
		manSequence: m.SequenceNumber,
		manCommon:   common,
		manValidate: validateSeq,
		manInstall:  install,
	})
}

// seal wraps an encoded SUIT_Manifest in a signed envelope. The digest
// covers the bstr-wrapped manifest, its byte-string header included
// ("Authenticated Manifests").
func seal(manifest []byte, signer cose.Signer) ([]byte, error) {
	wrapped, err := encMode.Marshal(manifest)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(wrapped)
	digest, err := encMode.Marshal(suitDigest{Alg: algSHA256, Bytes: sum[:]})
	if err != nil {
		return nil, err
	}
	return assemble(digest, manifest, signer)
}

// assemble signs an encoded SUIT_Digest and builds the envelope around it
// and the manifest.
func assemble(digest, manifest []byte, signer cose.Signer) ([]byte, error) {
	msg := cose.NewSign1Message()
	msg.Headers.Protected.SetAlgorithm(signer.Algorithm())
	// The COSE payload is detached: it is the encoded SUIT_Digest, which
	// travels beside the signature in the authentication wrapper.
	msg.Payload = digest
	if err := msg.Sign(rand.Reader, nil, signer); err != nil {
		return nil, fmt.Errorf("suit: sign: %w", err)
	}
	msg.Payload = nil
	sign1, err := msg.MarshalCBOR()
	if err != nil {
		return nil, err
	}
	auth, err := encMode.Marshal([][]byte{digest, sign1})
	if err != nil {
		return nil, err
	}
	return encMode.Marshal(cbor.Tag{Number: tagEnvelope, Content: map[int][]byte{
		envAuthentication: auth,
		envManifest:       manifest,
	}})
}
