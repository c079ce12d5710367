package keys

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/cjson"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/steward-iot/steward/internal/trust"
)

// Document is an unsigned root or targets version, checked and ready for a
// person to look at and sign.
type Document struct {
	trust.UnsignedMetadata
	// Canonical is what a key signs: the canonical JSON of the signed part,
	// computed here from the file rather than trusted from it.
	Canonical []byte
	Expires   time.Time
	Root      *metadata.RootType    // for role root
	Targets   *metadata.TargetsType // for role targets
}

// ReadUnsigned parses what `steward ctl tuf unsigned` exported and checks
// that it is consistent: its signed part canonicalizes to the SHA-256 it
// names (so the bytes signed here are the bytes the server verifies), it
// is the role and version it says, and it has not expired at now.
func ReadUnsigned(data []byte, now time.Time) (*Document, error) {
	var u trust.UnsignedMetadata
	if err := json.Unmarshal(data, &u); err != nil {
		return nil, fmt.Errorf("not an unsigned metadata file from 'steward ctl tuf unsigned': %v", err)
	}
	if u.Role != trust.RoleRoot && u.Role != trust.RoleTargets {
		return nil, fmt.Errorf("not an unsigned metadata file from 'steward ctl tuf unsigned': role %q is not root or targets", u.Role)
	}
	if len(bytes.TrimSpace(u.Signed)) == 0 || u.SignedSHA256 == "" {
		return nil, errors.New("not an unsigned metadata file from 'steward ctl tuf unsigned': it lacks signed or signed_sha256")
	}
	canonical, err := canonicalize(u.Signed)
	if err != nil {
		return nil, fmt.Errorf("the signed part cannot be put in canonical JSON: %v", err)
	}
	if sum := sha256.Sum256(canonical); !strings.EqualFold(hex.EncodeToString(sum[:]), u.SignedSHA256) {
		return nil, fmt.Errorf("the signed part does not match the file's signed_sha256 (%s): the file was changed after it was exported; export it again",
			u.SignedSHA256)
	}
	d := &Document{UnsignedMetadata: u, Canonical: canonical}
	var typ string
	var version int64
	switch u.Role {
	case trust.RoleRoot:
		d.Root = &metadata.RootType{}
		err = json.Unmarshal(u.Signed, d.Root)
		typ, version, d.Expires = d.Root.Type, d.Root.Version, d.Root.Expires
	case trust.RoleTargets:
		d.Targets = &metadata.TargetsType{}
		err = json.Unmarshal(u.Signed, d.Targets)
		typ, version, d.Expires = d.Targets.Type, d.Targets.Version, d.Targets.Expires
	}
	if err != nil {
		return nil, fmt.Errorf("the signed part is not %s metadata: %v", u.Role, err)
	}
	if typ != string(u.Role) || version != u.Version {
		return nil, fmt.Errorf("the file says %s version %d but its signed part is %s version %d", u.Role, u.Version, typ, version)
	}
	if !d.Expires.After(now) {
		return nil, fmt.Errorf("%s version %d expired at %s: signing it is pointless; export a fresh version", u.Role, u.Version, d.Expires.Format(time.RFC3339))
	}
	if d.Root != nil {
		// The last requirement is the new root's own keys: it must be what
		// the signed content lists, not a claim of the (unsigned) file.
		rr := d.Root.Roles[metadata.ROOT]
		if rr == nil || len(u.Requirements) == 0 {
			return nil, errors.New("the signed root has no root role or the file lists no signing keys")
		}
		own := u.Requirements[len(u.Requirements)-1]
		if !sameSet(slices.Concat(own.Signed, own.Missing), rr.KeyIDs) || own.Threshold != rr.Threshold {
			return nil, errors.New("the file's list of root keys does not match the signed root: it was changed after it was exported")
		}
	}
	return d, nil
}

// canonicalize returns the canonical JSON of a JSON value.
func canonicalize(raw json.RawMessage) (b []byte, err error) {
	defer func() {
		if p := recover(); p != nil { // cjson panics on floats
			err = fmt.Errorf("%v", p)
		}
	}()
	return cjson.EncodeCanonical(raw)
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// MaySign returns nil if keyID is among the keys whose signatures count
// for the document.
func (d *Document) MaySign(keyID string) error {
	var all []string
	for _, r := range d.Requirements {
		if slices.Contains(r.Signed, keyID) || slices.Contains(r.Missing, keyID) {
			return nil
		}
		all = append(all, r.Missing...)
		all = append(all, r.Signed...)
	}
	return fmt.Errorf("key %s may not sign %s version %d; the keys that may are: %s", keyID, d.Role, d.Version, strings.Join(all, ", "))
}

// Sign signs the document's canonical bytes with priv, checks the
// signature as TUF clients will, and returns it for
// `steward ctl tuf add-signature`.
func (d *Document) Sign(priv crypto.Signer) (trust.OfflineSignature, error) {
	s, err := trust.NewSigner(d.Role, priv)
	if err != nil {
		return trust.OfflineSignature{}, err
	}
	if err := d.MaySign(s.KeyID()); err != nil {
		return trust.OfflineSignature{}, err
	}
	sig, err := s.Sign(d.Canonical)
	if err != nil {
		return trust.OfflineSignature{}, err
	}
	if err := verify(priv.Public(), d.Canonical, sig.Signature); err != nil {
		return trust.OfflineSignature{}, err
	}
	return trust.OfflineSignature{Role: d.Role, Version: d.Version, SignedSHA256: strings.ToLower(d.SignedSHA256),
		KeyID: sig.KeyID, Sig: hex.EncodeToString(sig.Signature)}, nil
}

// verify checks a signature the way go-tuf does.
func verify(pub crypto.PublicKey, signed, sig []byte) error {
	ok := false
	switch k := pub.(type) {
	case ed25519.PublicKey:
		ok = ed25519.Verify(k, signed, sig)
	case *ecdsa.PublicKey:
		digest := sha256.Sum256(signed)
		ok = ecdsa.VerifyASN1(k, digest[:], sig)
	}
	if !ok {
		return errors.New("the new signature does not verify: the key or the signer is broken")
	}
	return nil
}

// Describe writes what a person should check before signing: role,
// version, expiry, the keys and thresholds a root sets, or every target a
// targets version lists. signer is the key about to sign.
func (d *Document) Describe(w io.Writer, signer string, now time.Time) {
	fmt.Fprintf(w, "You are about to sign %s version %d\n", d.Role, d.Version)
	fmt.Fprintf(w, "  expires:   %s (in %d days)\n", d.Expires.UTC().Format(time.RFC3339), int(d.Expires.Sub(now).Hours()/24))
	fmt.Fprintf(w, "  sha256:    %s (of the canonical bytes signed)\n", d.SignedSHA256)
	fmt.Fprintf(w, "  with key:  %s\n", signer)
	if d.Root != nil {
		fmt.Fprintf(w, "  consistent snapshots: %v\n", d.Root.ConsistentSnapshot)
		for _, role := range []string{metadata.ROOT, metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP} {
			r := d.Root.Roles[role]
			if r == nil {
				fmt.Fprintf(w, "  %-9s  NO KEYS\n", role)
				continue
			}
			fmt.Fprintf(w, "  %-9s  threshold %d of %d key(s):\n", role, r.Threshold, len(r.KeyIDs))
			for _, id := range r.KeyIDs {
				typ := "?"
				if k := d.Root.Keys[id]; k != nil {
					typ = k.Type
				}
				mark := ""
				if id == signer {
					mark = "   <- this key"
				}
				fmt.Fprintf(w, "    %s  %s%s\n", printable(id), printable(typ), mark)
			}
		}
	}
	if d.Targets != nil {
		paths := make([]string, 0, len(d.Targets.Targets))
		for p := range d.Targets.Targets {
			paths = append(paths, p)
		}
		sort.Strings(paths)
		fmt.Fprintf(w, "  targets:   %d file(s)\n", len(paths))
		for _, p := range paths {
			tf := d.Targets.Targets[p]
			custom := ""
			if tf.Custom != nil {
				var buf bytes.Buffer
				if json.Compact(&buf, *tf.Custom) == nil {
					custom = "  " + buf.String()
				} else {
					custom = "  " + string(*tf.Custom)
				}
			}
			fmt.Fprintf(w, "    %s  %d bytes  sha256 %s%s\n", printable(p), tf.Length, hex.EncodeToString(tf.Hashes["sha256"]), printable(custom))
		}
		if d.Targets.Delegations != nil {
			fmt.Fprintf(w, "  delegations: %d role(s)\n", len(d.Targets.Delegations.Roles))
		}
	}
	for _, r := range d.Requirements {
		fmt.Fprintf(w, "  signatures of %s keys: %d of %d so far\n", printable(r.Keys), len(r.Signed), r.Threshold)
	}
}

// printable neutralizes control characters: the file comes from a server
// that may be compromised, and escape sequences could make the terminal
// show something other than what is signed.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return '?'
		}
		return r
	}, s)
}
