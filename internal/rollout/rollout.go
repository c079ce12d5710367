// Package rollout decides which release each device should install. Today
// that is a direct assignment of a release to one device (a person's
// deployment); phased rollouts to groups and fleet queries will assign
// through the same record. The director turns an assignment into signed,
// per-device metadata.
package rollout

import (
	"context"
	"log/slog"
	"time"

	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/audit"
	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/problem"
	"github.com/steward-iot/steward/internal/release"
)

// Assignment is the release one device should install.
type Assignment struct {
	DeviceID  string `json:"device_id"`
	ReleaseID string `json:"release_id"`
	// RolloutID names the rollout that made the assignment; empty for a
	// person's direct assignment.
	RolloutID  string    `json:"rollout_id,omitempty"`
	AssignedBy string    `json:"assigned_by"`
	AssignedAt time.Time `json:"assigned_at"`
}

// AssignRequest assigns a release to a device.
type AssignRequest struct {
	ReleaseID string `json:"release_id"`
}

// Tx is what rollout needs from a store transaction.
type Tx interface {
	AppendAudit(ctx context.Context, r audit.Record) (audit.Event, error)
	DeviceByID(ctx context.Context, orgID, id string) (inventory.Device, error)
	ReleaseByID(ctx context.Context, orgID, id string) (release.Release, error)
	ProductByID(ctx context.Context, orgID, id string) (inventory.Product, error)
	ReleaseByVersion(ctx context.Context, orgID, productID, version string) (release.Release, error)
	PutAssignment(ctx context.Context, orgID string, a Assignment) error
	DeleteAssignment(ctx context.Context, orgID, deviceID string) (bool, error)
	AssignmentOf(ctx context.Context, orgID, deviceID string) (Assignment, error)
	// AddUpdateEvent appends to a device's update history unless it holds
	// the event's report id already (then inserted is false and nothing
	// changes).
	AddUpdateEvent(ctx context.Context, orgID string, e UpdateEvent) (inserted bool, err error)
	// UpdateHistory lists a device's update events by id after after.
	UpdateHistory(ctx context.Context, orgID, deviceID, after string, limit int) ([]UpdateEvent, error)

	RolloutTx
}

// Store runs functions in read or write transactions.
type Store interface {
	Read(ctx context.Context, fn func(Tx) error) error
	Write(ctx context.Context, fn func(Tx) error) error
}

// Service assigns releases to devices: directly, and through phased
// rollouts decided at check-in.
type Service struct {
	store Store
	clock clock.Clock
	log   *slog.Logger
	cache liveCache
	waker Waker
	poll  time.Duration // devices' check-in interval, for plans
	// budget is the server's check-ins per second, which paces wake-ups.
	budget float64
}

// NewService returns a rollout service.
func NewService(s Store, c clock.Clock) *Service {
	if c == nil {
		c = clock.Real
	}
	return &Service{store: s, clock: c, log: slog.New(slog.DiscardHandler), budget: DefaultCheckinBudget}
}

// SetLogger sets where the service logs (nothing by default).
func (s *Service) SetLogger(l *slog.Logger) {
	if l != nil {
		s.log = l
	}
}

// Waker asks devices to check in at once (MQTT wake-ups). org is the
// organization's id.
type Waker interface {
	WakeDevices(ctx context.Context, org string, deviceIDs []string, reason, rolloutID string) error
	WakeOrg(ctx context.Context, org string, spread time.Duration, reason, rolloutID string) error
}

// SetWaker makes immediate rollouts wake their organization's devices when
// they start and at each phase; nil (the default) sends no wake-ups, and
// devices learn of the rollout at their next poll.
func (s *Service) SetWaker(w Waker) { s.waker = w }

// Assign makes rel the release a device should install (a pending device
// gets it once accepted; a quarantined one still receives updates). The release must
// be for the device's product. (The device itself refuses a release counter
// below the one it committed: roll back by re-releasing the old image with
// a higher counter.)
func (s *Service) Assign(ctx context.Context, p access.Principal, deviceID string, req AssignRequest) (Assignment, error) {
	if err := p.Require(access.DeviceWrite); err != nil {
		return Assignment{}, err
	}
	if req.ReleaseID == "" {
		return Assignment{}, problem.InvalidField("release_id", "name the release to install")
	}
	a := Assignment{DeviceID: deviceID, ReleaseID: req.ReleaseID, AssignedBy: p.Actor.Name, AssignedAt: clock.Norm(s.clock.Now())}
	err := s.store.Write(ctx, func(tx Tx) error {
		d, err := tx.DeviceByID(ctx, p.OrgID, deviceID)
		if err != nil {
			return err
		}
		switch d.Status {
		case "rejected", "revoked", "decommissioned":
			return problem.Conflict("device %s is %s and receives no updates", d.Serial, d.Status)
		}
		r, err := tx.ReleaseByID(ctx, p.OrgID, req.ReleaseID)
		if problem.Is(err, problem.KindNotFound) {
			return problem.InvalidField("release_id", "no release %s in this organization", req.ReleaseID)
		} else if err != nil {
			return err
		}
		if r.ProductID != d.ProductID {
			return problem.InvalidField("release_id", "release %s %s is for product %s, but device %s is a %s",
				r.Product, r.Version, r.Product, d.Serial, d.Product)
		}
		if err := tx.PutAssignment(ctx, p.OrgID, a); err != nil {
			return err
		}
		_, err = tx.AppendAudit(ctx, audit.Record{OrgID: p.OrgID, Actor: p.Actor, Action: "device.assign",
			TargetType: "device", TargetID: deviceID, Details: map[string]any{"release_id": r.ID, "product": r.Product,
				"version": r.Version, "release_counter": r.Counter}})
		return err
	})
	return a, err
}

// Unassign removes a device's assignment; a device already installing
// finishes, one that has not started gets nothing.
func (s *Service) Unassign(ctx context.Context, p access.Principal, deviceID string) error {
	if err := p.Require(access.DeviceWrite); err != nil {
		return err
	}
	return s.store.Write(ctx, func(tx Tx) error {
		if _, err := tx.DeviceByID(ctx, p.OrgID, deviceID); err != nil {
			return err
		}
		ok, err := tx.DeleteAssignment(ctx, p.OrgID, deviceID)
		if err != nil {
			return err
		}
		if !ok {
			return problem.NotFound("device %s has no assigned release", deviceID)
		}
		_, err = tx.AppendAudit(ctx, audit.Record{OrgID: p.OrgID, Actor: p.Actor, Action: "device.unassign",
			TargetType: "device", TargetID: deviceID})
		return err
	})
}

// Get returns a device's assignment.
func (s *Service) Get(ctx context.Context, p access.Principal, deviceID string) (Assignment, error) {
	if err := p.Require(access.DeviceRead); err != nil {
		return Assignment{}, err
	}
	var a Assignment
	err := s.store.Read(ctx, func(tx Tx) error {
		if _, err := tx.DeviceByID(ctx, p.OrgID, deviceID); err != nil {
			return err
		}
		var err error
		a, err = tx.AssignmentOf(ctx, p.OrgID, deviceID)
		if problem.Is(err, problem.KindNotFound) {
			return problem.NotFound("device %s has no assigned release", deviceID)
		}
		return err
	})
	return a, err
}

// Wanted returns the release a device should install and its product's
// hardware id, for the director: ok is false when it has none.
func (s *Service) Wanted(ctx context.Context, d inventory.Device) (r release.Release, hardwareID string, ok bool, err error) {
	err = s.store.Read(ctx, func(tx Tx) error {
		a, err := tx.AssignmentOf(ctx, d.OrgID, d.ID)
		if problem.Is(err, problem.KindNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		if r, err = tx.ReleaseByID(ctx, d.OrgID, a.ReleaseID); err != nil {
			return err
		}
		prod, err := tx.ProductByID(ctx, d.OrgID, r.ProductID)
		hardwareID, ok = prod.HardwareID, err == nil
		return err
	})
	return r, hardwareID, ok, err
}

// Installed returns the release a device reports running, when Steward
// knows it: a delta is offered only against its image.
func (s *Service) Installed(ctx context.Context, d inventory.Device) (release.Release, bool, error) {
	if d.InstalledVersion == "" {
		return release.Release{}, false, nil
	}
	var r release.Release
	err := s.store.Read(ctx, func(tx Tx) error {
		var err error
		r, err = tx.ReleaseByVersion(ctx, d.OrgID, d.ProductID, d.InstalledVersion)
		return err
	})
	if problem.Is(err, problem.KindNotFound) {
		return release.Release{}, false, nil
	}
	return r, err == nil, err
}
