package server

import (
	"context"
	"fmt"

	"github.com/steward-iot/steward/agent/proto"
	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/release"
	"github.com/steward-iot/steward/internal/rollout"
	"github.com/steward-iot/steward/internal/store"
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

// Pending lets the rollout engine decide at check-in: it may assign a
// release (a phased rollout's turn for this device), which the director
// then signs.
func (u updates) Pending(ctx context.Context, d inventory.Device, st proto.State) (*proto.UpdateOffer, error) {
	return u.rollout.Offer(ctx, d, st)
}

// Director names the full images of the wanted release, and the deltas
// whose precursor is an image of the release the device reports running:
// the agent applies a delta when its own image matches the precursor (it
// checks the hash) and falls back to the full image otherwise.
func (u updates) Director(ctx context.Context, d inventory.Device, name string) ([]byte, error) {
	r, hw, ok, err := u.rollout.Wanted(ctx, d)
	if err != nil {
		return nil, err
	}
	var want []trust.Target
	if ok {
		running := map[string]bool{}
		if inst, known, err := u.rollout.Installed(ctx, d); err != nil {
			return nil, err
		} else if known {
			for _, a := range inst.Artifacts {
				if a.Kind == release.KindFull {
					running[a.SHA256] = true
				}
			}
		}
		offer := r
		offer.Artifacts = nil
		for _, a := range r.Artifacts {
			if a.Kind != release.KindDelta || running[a.PrecursorSHA256] {
				offer.Artifacts = append(offer.Artifacts, a)
			}
		}
		want = release.Targets(offer, hw)
	}
	// Signed metadata, and the keys made on first use, must survive a
	// crash even though a device request caused them.
	return u.director.Serve(store.Durable(ctx), d.OrgID, d.ID, name, want)
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
