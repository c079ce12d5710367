package suit

import (
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/fxamacker/cbor/v2"
	"github.com/veraison/go-cose"
)

// decMode bounds what an envelope may make the decoder do. Every bstr-wrapped
// part is decoded on its own, and in the draft's examples none nests deeper
// than 3 levels or holds more than 6 items, so these limits leave ample room
// while refusing nesting and length abuse.
// Duplicate map keys are refused, so no two readers can see different values.
var decMode = func() cbor.DecMode {
	dm, err := cbor.DecOptions{
		MaxNestedLevels:  16,
		MaxArrayElements: 512,
		MaxMapPairs:      64,
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthForbidden,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return dm
}()

// unmarshal decodes exactly one CBOR item, classifying failures.
func unmarshal(data []byte, v any, what string) error {
	err := decMode.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	var (
		extra  *cbor.ExtraneousDataError
		nested *cbor.MaxNestedLevelError
		array  *cbor.MaxArrayElementsError
		pairs  *cbor.MaxMapPairsError
	)
	switch {
	case errors.As(err, &extra):
		return fmt.Errorf("%w: %s: %v", ErrTrailingBytes, what, err)
	case errors.As(err, &nested), errors.As(err, &array), errors.As(err, &pairs):
		return fmt.Errorf("%w: %s: %v", ErrLimits, what, err)
	}
	return fmt.Errorf("%w: %s: %v", ErrMalformed, what, err)
}

// bstr returns the content of an encoded CBOR byte string. It insists on
// major type 2, since the decoder would also fill a []byte from an array.
func bstr(raw cbor.RawMessage, what string) ([]byte, error) {
	if len(raw) == 0 || raw[0]>>5 != 2 {
		return nil, fmt.Errorf("%w: %s is not a byte string", ErrMalformed, what)
	}
	var b []byte
	if err := unmarshal(raw, &b, what); err != nil {
		return nil, err
	}
	return b, nil
}

// bstrCBOR decodes a "bstr .cbor T" item into v.
func bstrCBOR(raw cbor.RawMessage, v any, what string) error {
	b, err := bstr(raw, what)
	if err != nil {
		return err
	}
	return unmarshal(b, v, what)
}

type envelopeMap struct {
	Auth     cbor.RawMessage `cbor:"2,keyasint"`
	Manifest cbor.RawMessage `cbor:"3,keyasint"`
}

type manifestMap struct {
	Version      *uint64         `cbor:"1,keyasint"`
	Sequence     *uint64         `cbor:"2,keyasint"`
	Common       cbor.RawMessage `cbor:"3,keyasint"`
	PayloadFetch cbor.RawMessage `cbor:"16,keyasint"`
	Install      cbor.RawMessage `cbor:"20,keyasint"`
}

type commonMap struct {
	Components []cbor.RawMessage `cbor:"2,keyasint"`
	Shared     cbor.RawMessage   `cbor:"4,keyasint"`
}

// Decode verifies a SUIT envelope and returns the manifest fields this
// package understands. It refuses the envelope unless the authentication
// wrapper's SHA-256 digest matches the bstr-wrapped manifest and a
// COSE_Sign1 over that digest (detached payload) verifies with verifier.
// Commands and manifest members it does not know are skipped; only what
// component 0 is given in the shared, payload-fetch and install sequences is
// read (not alternatives inside try-each, nor severed sequences).
func Decode(envelope []byte, verifier cose.Verifier) (*Manifest, error) {
	if verifier == nil {
		return nil, errors.New("suit: nil verifier")
	}
	if len(envelope) > MaxEnvelopeSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(envelope), MaxEnvelopeSize)
	}
	var tag cbor.RawTag
	if err := unmarshal(envelope, &tag, "envelope"); err != nil {
		return nil, err
	}
	if tag.Number != tagEnvelope {
		return nil, fmt.Errorf("%w: CBOR tag %d, want %d (SUIT_Envelope)", ErrMalformed, tag.Number, tagEnvelope)
	}
	var env envelopeMap
	if err := unmarshal(tag.Content, &env, "envelope"); err != nil {
		return nil, err
	}
	if env.Auth == nil || env.Manifest == nil {
		return nil, fmt.Errorf("%w: authentication wrapper or manifest missing", ErrMalformed)
	}
	if env.Manifest[0]>>5 != 2 {
		return nil, fmt.Errorf("%w: manifest is not a byte string", ErrMalformed)
	}
	if err := authenticate(env.Auth, env.Manifest, verifier); err != nil {
		return nil, err
	}
	return parseManifest(env.Manifest)
}

// authenticate checks the manifest (still bstr-wrapped) against the digest
// and the digest against the signatures.
func authenticate(authRaw, manifestRaw cbor.RawMessage, verifier cose.Verifier) error {
	var auth []cbor.RawMessage
	if err := bstrCBOR(authRaw, &auth, "authentication wrapper"); err != nil {
		return err
	}
	if len(auth) == 0 {
		return fmt.Errorf("%w: authentication wrapper is empty", ErrMalformed)
	}
	digestEnc, err := bstr(auth[0], "manifest digest")
	if err != nil {
		return err
	}
	want, err := sha256Digest(digestEnc, "manifest digest")
	if err != nil {
		return err
	}
	got := sha256.Sum256(manifestRaw)
	if !hmac.Equal(got[:], want) {
		return ErrDigestMismatch
	}

	var sigErr error
	for i, raw := range auth[1:] {
		block, err := bstr(raw, "authentication block")
		if err != nil {
			return err
		}
		switch err := verifySign1(block, digestEnc, verifier); {
		case err == nil:
			return nil
		case errors.Is(err, errNotForVerifier):
		case errors.Is(err, ErrSignature):
			// Another block may carry the same algorithm from our key.
			sigErr = fmt.Errorf("authentication block %d: %w", i+1, err)
		default:
			return fmt.Errorf("authentication block %d: %w", i+1, err)
		}
	}
	if sigErr != nil {
		return sigErr
	}
	return fmt.Errorf("%w: want %v", ErrNoSignature, verifier.Algorithm())
}

// errNotForVerifier marks authentication blocks Decode passes over: other
// COSE structures (MACs, COSE_Sign) or signatures with another algorithm.
var errNotForVerifier = errors.New("suit: authentication block not for this verifier")

// verifySign1 verifies one authentication block over the encoded digest.
func verifySign1(block, digestEnc []byte, verifier cose.Verifier) error {
	if len(block) < 2 || block[0] != 0xd2 || block[1] != 0x84 { // COSE_Sign1_Tagged
		return errNotForVerifier
	}
	// go-cose decodes with its own, looser limits: apply ours first.
	if err := unmarshal(block, new(cbor.RawTag), "COSE_Sign1"); err != nil {
		return err
	}
	var msg cose.Sign1Message
	if err := msg.UnmarshalCBOR(block); err != nil {
		return fmt.Errorf("%w: COSE_Sign1: %v", ErrMalformed, err)
	}
	if msg.Payload != nil {
		return fmt.Errorf("%w: COSE_Sign1 payload is not detached", ErrMalformed)
	}
	// RFC 9052 section 3.1: a recipient must refuse critical header
	// parameters it does not understand, and this package understands none.
	if _, ok := msg.Headers.Protected[cose.HeaderLabelCritical]; ok {
		return fmt.Errorf("%w: COSE_Sign1 has critical header parameters", ErrMalformed)
	}
	alg, err := msg.Headers.Protected.Algorithm()
	if err != nil {
		return fmt.Errorf("%w: COSE_Sign1 algorithm: %v", ErrMalformed, err)
	}
	if alg != verifier.Algorithm() {
		return errNotForVerifier
	}
	msg.Payload = digestEnc
	if err := msg.Verify(nil, verifier); err != nil {
		return fmt.Errorf("%w: %v", ErrSignature, err)
	}
	return nil
}

// sha256Digest decodes an encoded SUIT_Digest and returns its bytes,
// refusing every algorithm but SHA-256, the one the draft makes mandatory.
func sha256Digest(enc []byte, what string) ([]byte, error) {
	var d suitDigest
	if err := unmarshal(enc, &d, what); err != nil {
		return nil, err
	}
	if d.Alg != algSHA256 {
		return nil, fmt.Errorf("%w: %s uses COSE algorithm %d, want SHA-256 (%d)", ErrUnsupportedDigest, what, d.Alg, algSHA256)
	}
	if len(d.Bytes) != sha256.Size {
		return nil, fmt.Errorf("%w: %s is %d bytes, want %d", ErrMalformed, what, len(d.Bytes), sha256.Size)
	}
	return d.Bytes, nil
}

// parseManifest reads the authenticated, bstr-wrapped SUIT_Manifest.
func parseManifest(raw cbor.RawMessage) (*Manifest, error) {
	var mm manifestMap
	if err := bstrCBOR(raw, &mm, "manifest"); err != nil {
		return nil, err
	}
	if mm.Version == nil || *mm.Version != manifestVersion {
		return nil, fmt.Errorf("%w: manifest-version must be %d", ErrMalformed, manifestVersion)
	}
	if mm.Sequence == nil {
		return nil, fmt.Errorf("%w: manifest-sequence-number missing", ErrMalformed)
	}
	if mm.Common == nil {
		return nil, fmt.Errorf("%w: common missing", ErrMalformed)
	}
	var common commonMap
	if err := bstrCBOR(mm.Common, &common, "common"); err != nil {
		return nil, err
	}
	if len(common.Components) == 0 {
		return nil, fmt.Errorf("%w: no components", ErrMalformed)
	}
	var component []cbor.RawMessage
	if err := unmarshal(common.Components[0], &component, "component identifier"); err != nil {
		return nil, err
	}
	m := &Manifest{SequenceNumber: *mm.Sequence, ComponentID: make([][]byte, 0, len(component))}
	for _, part := range component {
		b, err := bstr(part, "component identifier")
		if err != nil {
			return nil, err
		}
		m.ComponentID = append(m.ComponentID, b)
	}

	// Parameters persist from the shared sequence into the others, as when a
	// device runs the update procedure.
	for _, seq := range []struct {
		name string
		raw  cbor.RawMessage
	}{{"shared sequence", common.Shared}, {"payload-fetch", mm.PayloadFetch}, {"install", mm.Install}} {
		if seq.raw == nil {
			continue
		}
		// A SUIT_Digest (array) in place of the sequence means it was severed.
		if seq.raw[0]>>5 == 4 {
			continue
		}
		if err := readSequence(seq.raw, seq.name, m); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// readSequence applies the override-parameters directives that reach
// component 0 in an encoded command sequence to m.
func readSequence(raw cbor.RawMessage, name string, m *Manifest) error {
	var cmds []cbor.RawMessage
	if err := bstrCBOR(raw, &cmds, name); err != nil {
		return err
	}
	if len(cmds)%2 != 0 {
		return fmt.Errorf("%w: %s: odd number of items", ErrMalformed, name)
	}
	selected := true // the component index starts at 0
	for i := 0; i < len(cmds); i += 2 {
		var code int64
		if err := unmarshal(cmds[i], &code, name+" command"); err != nil {
			return err
		}
		switch code {
		case dirComponentIndex:
			s, err := selectsZero(cmds[i+1])
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			selected = s
		case dirOverrideParams:
			var params map[int64]cbor.RawMessage
			if err := unmarshal(cmds[i+1], &params, name+" parameters"); err != nil {
				return err
			}
			if selected {
				if err := applyParams(params, m); err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
			}
		}
	}
	return nil
}

// selectsZero reports whether a set-component-index argument (uint, true,
// or an array of uints) includes component 0.
func selectsZero(raw cbor.RawMessage) (bool, error) {
	var v any
	if err := unmarshal(raw, &v, "component index"); err != nil {
		return false, err
	}
	switch v := v.(type) {
	case uint64:
		return v == 0, nil
	case bool:
		return v, nil
	case []any:
		found := false
		for _, e := range v {
			i, ok := e.(uint64)
			if !ok {
				return false, fmt.Errorf("%w: component index array holds %T", ErrMalformed, e)
			}
			found = found || i == 0
		}
		return found, nil
	}
	return false, fmt.Errorf("%w: component index is %T", ErrMalformed, v)
}

func applyParams(params map[int64]cbor.RawMessage, m *Manifest) error {
	for key, raw := range params {
		switch key {
		case paramVendorID:
			if err := uuidParam(raw, "vendor-id", &m.VendorID); err != nil {
				return err
			}
		case paramClassID:
			if err := uuidParam(raw, "class-id", &m.ClassID); err != nil {
				return err
			}
		case paramImageDigest:
			enc, err := bstr(raw, "image-digest")
			if err != nil {
				return err
			}
			d, err := sha256Digest(enc, "image-digest")
			if err != nil {
				return err
			}
			copy(m.ImageDigest[:], d)
		case paramImageSize:
			if err := unmarshal(raw, &m.ImageSize, "image-size"); err != nil {
				return err
			}
		case paramURI:
			if len(raw) == 0 || raw[0]>>5 != 3 {
				return fmt.Errorf("%w: uri is not a text string", ErrMalformed)
			}
			if err := unmarshal(raw, &m.URI, "uri"); err != nil {
				return err
			}
		}
	}
	return nil
}

// uuidParam reads a vendor or class identifier. The draft also allows a
// vendor to be named by a CBOR PEN; this package supports UUIDs only.
func uuidParam(raw cbor.RawMessage, name string, dst *[16]byte) error {
	b, err := bstr(raw, name)
	if err != nil {
		return err
	}
	if len(b) != len(dst) {
		return fmt.Errorf("%w: %s is %d bytes, want a 16-byte UUID", ErrMalformed, name, len(b))
	}
	copy(dst[:], b)
	return nil
}

// CheckSequence refuses a manifest whose sequence number is lower than
// minSeq, the device's current one (anti-rollback; an equal number is the
// same release and passes).
func CheckSequence(m *Manifest, minSeq uint64) error {
	if m == nil {
		return errors.New("suit: nil manifest")
	}
	if m.SequenceNumber < minSeq {
		return fmt.Errorf("%w: %d < %d", ErrRollback, m.SequenceNumber, minSeq)
	}
	return nil
}

// AlgorithmESP256 is ESP256: ECDSA on P-256 with SHA-256 under its "fully
// specified" COSE identifier (draft-ietf-jose-fully-specified-algorithms),
// which the newer drafts' examples are signed with. go-cose v1.3.0 lacks it,
// but ES256 (-7) signs exactly the same way.
const AlgorithmESP256 cose.Algorithm = -9

// NewESP256Verifier returns a verifier for ESP256-signed envelopes.
func NewESP256Verifier(key *ecdsa.PublicKey) (cose.Verifier, error) {
	v, err := cose.NewVerifier(cose.AlgorithmES256, key)
	if err != nil {
		return nil, err
	}
	return esp256Verifier{v}, nil
}

type esp256Verifier struct{ cose.Verifier }

func (esp256Verifier) Algorithm() cose.Algorithm { return AlgorithmESP256 }
