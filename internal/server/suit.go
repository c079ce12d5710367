package server

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path"
	"strings"

	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/store"
	"github.com/steward-iot/steward/internal/suit"
	"github.com/steward-iot/steward/internal/trust"
)

// publisher signs release targets into the image repository and, for
// microcontroller (mcu-suit) products, also emits a signed SUIT envelope
// per full image: microcontrollers cannot run a TUF client.
type publisher struct {
	trust     *trust.Service
	suit      *suit.Emitter
	db        *store.DB
	publicURL string
}

func (p publisher) Publish(ctx context.Context, orgID string, targets []trust.Target) error {
	if err := p.trust.Publish(ctx, orgID, targets); err != nil {
		return err
	}
	for _, t := range targets {
		var c struct {
			HardwareID      string `json:"hardware_id"`
			ReleaseCounter  uint64 `json:"release_counter"`
			ReleaseID       string `json:"release_id"`
			PrecursorSHA256 string `json:"precursor_sha256"`
		}
		if err := json.Unmarshal(t.Custom, &c); err != nil {
			return fmt.Errorf("target %s: custom fields: %w", t.Path, err)
		}
		if c.PrecursorSHA256 != "" {
			continue // SUIT devices take full images
		}
		var prod inventory.Product
		var orgSlug, artifactID string
		err := p.db.Read(ctx, func(tx *store.Tx) error {
			var err error
			if prod, err = tx.ProductByHardwareID(ctx, orgID, c.HardwareID); err != nil {
				return err
			}
			org, err := tx.OrgByID(ctx, orgID)
			if err != nil {
				return err
			}
			orgSlug = org.Slug
			r, err := tx.ReleaseByID(ctx, orgID, c.ReleaseID)
			if err != nil {
				return err
			}
			for _, a := range r.Artifacts {
				if r.Product+"/"+r.Version+"/"+a.Name == t.Path {
					artifactID = a.ID
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if prod.Capability != inventory.CapabilityMCUSUIT || artifactID == "" {
			continue
		}
		var digest [32]byte
		copy(digest[:], t.Hashes["sha256"])
		// The image's consistent-snapshot name in the image repository: it
		// never changes, so devices and caches can keep it.
		dir, base := path.Split(t.Path)
		uri := strings.TrimSuffix(p.publicURL, "/") + "/tuf/" + orgSlug + "/targets/" + dir + hex.EncodeToString(digest[:]) + "." + base
		if _, err := p.suit.Emit(ctx, orgID, suit.Image{ReleaseID: c.ReleaseID, ArtifactID: artifactID,
			VendorDomain: vendorDomain(orgSlug, p.publicURL), Class: prod.HardwareID, Digest: digest, Size: uint64(t.Length),
			Counter: c.ReleaseCounter, URI: uri}); err != nil {
			return fmt.Errorf("SUIT envelope for %s: %w", t.Path, err)
		}
	}
	return nil
}

// vendorDomain names the vendor for its RFC 9124 vendor UUID: the
// organization under this installation's host, e.g. "acme.updates.example.com".
func vendorDomain(orgSlug, publicURL string) string {
	host := strings.TrimPrefix(strings.TrimPrefix(publicURL, "https://"), "http://")
	host, _, _ = strings.Cut(host, "/")
	host, _, _ = strings.Cut(host, ":")
	return orgSlug + "." + host
}
