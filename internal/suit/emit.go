package suit

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"

	"github.com/veraison/go-cose"
)

// Image is one release image to emit an envelope for.
type Image struct {
	ReleaseID, ArtifactID string
	// VendorDomain and Class give the vendor and class UUIDs (VendorID,
	// ClassID) the device checks before anything else.
	VendorDomain, Class string
	Digest              [32]byte
	Size                uint64
	// Counter is the release counter: the manifest sequence number.
	Counter uint64
	URI     string
}

// Envelope is a stored, signed envelope of one release image.
type Envelope struct {
	ReleaseID  string `json:"release_id"`
	ArtifactID string `json:"artifact_id"`
	Envelope   []byte `json:"envelope" doc:"the SUIT envelope (CBOR), base64 in JSON"`
}

// Store keeps each organization's SUIT signing key and the envelopes made.
type Store interface {
	// SUITKey returns the organization's PKCS#8 key, nil when it has none.
	SUITKey(ctx context.Context, orgID string) ([]byte, error)
	// SaveSUITKey stores the organization's first key; it fails if one exists.
	SaveSUITKey(ctx context.Context, orgID string, pkcs8 []byte) error
	PutEnvelope(ctx context.Context, orgID string, e Envelope) error
	Envelopes(ctx context.Context, orgID, releaseID string) ([]Envelope, error)
}

// Emitter signs envelopes with an online ES256 (P-256) key per
// organization, created on first use: microcontrollers verify ECDSA P-256
// in hardware far more often than Ed25519.
type Emitter struct {
	store Store
	mu    sync.Mutex
	keys  map[string]*ecdsa.PrivateKey
}

// NewEmitter returns an emitter.
func NewEmitter(s Store) *Emitter { return &Emitter{store: s, keys: map[string]*ecdsa.PrivateKey{}} }

func (e *Emitter) key(ctx context.Context, orgID string) (*ecdsa.PrivateKey, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if k := e.keys[orgID]; k != nil {
		return k, nil
	}
	der, err := e.store.SUITKey(ctx, orgID)
	if err != nil {
		return nil, err
	}
	if der == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		if der, err = x509.MarshalPKCS8PrivateKey(k); err != nil {
			return nil, err
		}
		if err := e.store.SaveSUITKey(ctx, orgID, der); err != nil {
			// Another replica won the race: use its key.
			if der, err = e.store.SUITKey(ctx, orgID); err != nil || der == nil {
				return nil, errors.Join(errors.New("suit: could not store or read the signing key"), err)
			}
		}
	}
	priv, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("suit: the signing key of org %s is damaged: %w", orgID, err)
	}
	k, ok := priv.(*ecdsa.PrivateKey)
	if !ok || k.Curve != elliptic.P256() {
		return nil, fmt.Errorf("suit: the signing key of org %s is not ECDSA P-256", orgID)
	}
	e.keys[orgID] = k
	return k, nil
}

// PublicKey returns the key devices verify envelopes with (provision it
// at manufacture).
func (e *Emitter) PublicKey(ctx context.Context, orgID string) (*ecdsa.PublicKey, error) {
	k, err := e.key(ctx, orgID)
	if err != nil {
		return nil, err
	}
	return &k.PublicKey, nil
}

// Emit signs and stores the envelope of one image.
func (e *Emitter) Emit(ctx context.Context, orgID string, img Image) (Envelope, error) {
	k, err := e.key(ctx, orgID)
	if err != nil {
		return Envelope{}, err
	}
	signer, err := cose.NewSigner(cose.AlgorithmES256, crypto.Signer(k))
	if err != nil {
		return Envelope{}, err
	}
	vendor := VendorID(img.VendorDomain)
	env, err := Encode(Manifest{SequenceNumber: img.Counter, VendorID: vendor, ClassID: ClassID(vendor, img.Class),
		ImageDigest: img.Digest, ImageSize: img.Size, URI: img.URI, ComponentID: [][]byte{{0}}}, signer)
	if err != nil {
		return Envelope{}, err
	}
	out := Envelope{ReleaseID: img.ReleaseID, ArtifactID: img.ArtifactID, Envelope: env}
	return out, e.store.PutEnvelope(ctx, orgID, out)
}

// Envelopes returns the stored envelopes of a release.
func (e *Emitter) Envelopes(ctx context.Context, orgID, releaseID string) ([]Envelope, error) {
	return e.store.Envelopes(ctx, orgID, releaseID)
}
