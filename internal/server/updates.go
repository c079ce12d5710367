package server

import (
	"context"
	"fmt"

	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/release"
	"github.com/steward-iot/steward/internal/rollout"
	"github.com/steward-iot/steward/internal/suit"
	"github.com/steward-iot/steward/internal/trust"
)

// updates joins what a device should install (rollout) to the director
// metadata that tells it so (trust).
type updates struct {
	rollout  *rollout.Service
	director *trust.Director
	suit     *suit.Emitter
}

func (u updates) Pending(ctx context.Context, d inventory.Device) (bool, error) {
	r, _, ok, err := u.rollout.Wanted(ctx, d)
	return ok && r.Version != d.InstalledVersion, err
}

// Director names the full images of the wanted release. Deltas are left out
// until devices report the digest of the image they run, which is what a
// delta's precursor must match.
func (u updates) Director(ctx context.Context, d inventory.Device, name string) ([]byte, error) {
	r, hw, ok, err := u.rollout.Wanted(ctx, d)
	if err != nil {
		return nil, err
	}
	var want []trust.Target
	if ok {
		full := r
		full.Artifacts = nil
		for _, a := range r.Artifacts {
			if a.Kind != release.KindDelta {
				full.Artifacts = append(full.Artifacts, a)
			}
		}
		want = release.Targets(full, hw)
	}
	return u.director.Serve(ctx, d.OrgID, d.ID, name, want)
}

func (u updates) SUIT(ctx context.Context, d inventory.Device) ([]byte, error) {
	r, _, ok, err := u.rollout.Wanted(ctx, d)
	if err != nil {
		return nil, err
	}
	if ok {
		envs, err := u.suit.Envelopes(ctx, r.OrgID, r.ID)
		if err != nil {
			return nil, err
		}
		if len(envs) > 0 {
			return envs[0].Envelope, nil
		}
	}
	return nil, fmt.Errorf("%w: no SUIT envelope for device %s", trust.ErrNotFound, d.ID)
}
