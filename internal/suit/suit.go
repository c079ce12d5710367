// Package suit writes and reads signed IETF SUIT manifest envelopes
// (draft-ietf-suit-manifest-33; architecture RFC 9019, information model
// RFC 9124), the update format Steward emits for microcontroller products.
//
// A Manifest holds only what an update needs: vendor and class identifiers
// (checked by the device before anything else), the image digest and size,
// where to fetch the image, the component to write, and the sequence number
// (the release counter; devices refuse lower ones, see CheckSequence).
// Encode lays it out as the draft's "Example 1" (compatibility check,
// simultaneous download and installation); Decode verifies any envelope
// that follows the draft, including the draft's own examples.
package suit

import (
	"errors"

	"github.com/google/uuid"
)

// Manifest is the part of a SUIT manifest Steward writes and reads.
type Manifest struct {
	// SequenceNumber is the release counter (suit-manifest-sequence-number).
	SequenceNumber uint64
	// VendorID and ClassID are UUIDs (RFC 9124): see VendorID and ClassID.
	VendorID, ClassID [16]byte
	// ImageDigest is the SHA-256 of the image.
	ImageDigest [32]byte
	// ImageSize is the image length in bytes.
	ImageSize uint64
	// URI is where the device fetches the image.
	URI string
	// ComponentID names the component the image is written to, as a path of
	// byte strings; single-image devices conventionally use [][]byte{{0}}.
	ComponentID [][]byte
}

// Errors returned by Encode, Decode and CheckSequence; returned errors wrap
// them with detail, so test with errors.Is.
var (
	ErrInvalidManifest   = errors.New("suit: invalid manifest")
	ErrTooLarge          = errors.New("suit: envelope too large")
	ErrMalformed         = errors.New("suit: malformed envelope")
	ErrTrailingBytes     = errors.New("suit: trailing bytes after envelope")
	ErrLimits            = errors.New("suit: envelope exceeds decoding limits")
	ErrUnsupportedDigest = errors.New("suit: unsupported digest algorithm")
	ErrDigestMismatch    = errors.New("suit: manifest does not match its digest")
	ErrNoSignature       = errors.New("suit: no signature for the verifier's algorithm")
	ErrSignature         = errors.New("suit: signature verification failed")
	ErrRollback          = errors.New("suit: sequence number lower than installed")
)

// MaxEnvelopeSize bounds Decode's input: manifests for constrained devices
// are a few hundred bytes, and a device must hold the whole envelope while
// it checks it.
const MaxEnvelopeSize = 64 << 10

// CBOR labels from draft-ietf-suit-manifest-33 ("IANA Considerations"),
// limited to those this package writes or reads. Decode's struct tags repeat
// the manifest and envelope labels.
const (
	tagEnvelope = 107

	// SUIT_Envelope members.
	envAuthentication = 2
	envManifest       = 3

	// SUIT_Manifest members.
	manVersion  = 1
	manSequence = 2
	manCommon   = 3
	manValidate = 7
	manInstall  = 20

	// SUIT_Common members.
	commonComponents = 2
	commonShared     = 4

	// Commands: conditions and directives.
	condVendorID      = 1
	condClassID       = 2
	condImageMatch    = 3
	dirComponentIndex = 12
	dirOverrideParams = 20
	dirFetch          = 21

	// Parameters.
	paramVendorID    = 1
	paramClassID     = 2
	paramImageDigest = 3
	paramImageSize   = 14
	paramURI         = 21

	// Reporting policies, as the draft's examples set them.
	reportAll          = 15 // record and system information, on success and failure
	reportRecordOnFail = 2  // record on failure

	algSHA256       = -16 // COSE algorithm id (RFC 9054)
	manifestVersion = 1
)

// VendorID returns the RFC 9124 vendor identifier for a vendor's DNS domain:
// UUIDv5 in the DNS namespace.
func VendorID(domain string) [16]byte {
	return uuid.NewSHA1(uuid.NameSpaceDNS, []byte(domain))
}

// ClassID returns the RFC 9124 class identifier for a device class within a
// vendor: UUIDv5 of class-specific information (model, hardware revision…)
// in the vendor's namespace.
func ClassID(vendor [16]byte, class string) [16]byte {
	return uuid.NewSHA1(uuid.UUID(vendor), []byte(class))
}
