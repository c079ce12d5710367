package api

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"

	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/openapi"
	"github.com/steward-iot/steward/internal/suit"
)

// SUITEnvelopes gives out the SUIT envelopes of microcontroller releases
// and the key devices verify them with.
type SUITEnvelopes interface {
	Envelopes(ctx context.Context, orgID, releaseID string) ([]suit.Envelope, error)
	PublicKey(ctx context.Context, orgID string) (*ecdsa.PublicKey, error)
}

func (s *Server) suitRoutes() []route {
	if s.suit == nil || s.release == nil {
		return nil
	}
	return []route{
		{op: openapi.Operation{Method: "GET", Path: "/api/v1/orgs/{org}/releases/{id}/suit", ID: "releaseSUIT",
			Summary: "The signed SUIT envelopes of a release of a microcontroller (mcu-suit) product, one per full image; empty for other products.",
			Tags:    []string{"releases"}, Response: []suit.Envelope{}, Errors: readErrors}, handle: s.releaseSUIT},
		{op: openapi.Operation{Method: "GET", Path: "/api/v1/orgs/{org}/suit/key", ID: "suitKey",
			Summary: "The ECDSA P-256 public key (PEM) that SUIT envelopes are signed with, to provision devices with.",
			Tags:    []string{"releases"}, Response: nil, Errors: readErrors}, handle: s.suitKey},
	}
}

func (s *Server) releaseSUIT(c *call) (any, error) {
	r, err := s.release.GetRelease(c.r.Context(), c.p, c.r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	envs, err := s.suit.Envelopes(c.r.Context(), c.p.OrgID, r.ID)
	if envs == nil {
		envs = []suit.Envelope{}
	}
	return envs, err
}

func (s *Server) suitKey(c *call) (any, error) {
	if err := c.p.Require(access.ReleaseRead); err != nil {
		return nil, err
	}
	k, err := s.suit.PublicKey(c.r.Context(), c.p.OrgID)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		return nil, err
	}
	return stream(func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/x-pem-file")
		_ = pem.Encode(w, &pem.Block{Type: "PUBLIC KEY", Bytes: der})
	}), nil
}
