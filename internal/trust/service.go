package trust

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/clock"
)

// StoredKey is a private key the server holds for one role.
type StoredKey struct {
	Role  Role
	KeyID string
	PKCS8 []byte // DER
}

// KeyStore keeps online keys per organization.
type KeyStore interface {
	// TUFOrgs lists organizations that have a repository.
	TUFOrgs(ctx context.Context) ([]string, error)
	TUFKeys(ctx context.Context, orgID string) ([]StoredKey, error)
	SaveTUFKeys(ctx context.Context, orgID string, keys []StoredKey) error
}

// Service runs the image repositories of every vendor organization on this
// server: created on an org's first release, with every role's key held
// online (the embedded default; say so loudly), or beforehand with offline
// root and targets keys (Init, ceremony.go), and timestamps re-signed
// before they expire.
type Service struct {
	meta    func(orgID string) MetaStore
	keys    KeyStore
	targets TargetStore
	clock   clock.Clock
	log     *slog.Logger
	audit   AuditLog // key ceremonies (ceremony.go)

	mu    sync.Mutex
	repos map[string]*Repository
}

// NewService returns the repository service.
func NewService(meta func(orgID string) MetaStore, keys KeyStore, targets TargetStore, c clock.Clock, log *slog.Logger) *Service {
	if c == nil {
		c = clock.Real
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{meta: meta, keys: keys, targets: targets, clock: c, log: log, repos: map[string]*Repository{}}
}

// repo opens (and on first use initializes) an organization's repository.
func (s *Service) repo(ctx context.Context, orgID string, create bool) (*Repository, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.openLocked(ctx, orgID, create)
}

// openLocked is repo with s.mu held (Init holds it across its checks).
func (s *Service) openLocked(ctx context.Context, orgID string, create bool) (*Repository, error) {
	if r, ok := s.repos[orgID]; ok {
		return r, nil
	}
	stored, err := s.keys.TUFKeys(ctx, orgID)
	if err != nil {
		return nil, err
	}
	if len(stored) == 0 && !create {
		return nil, fmt.Errorf("%w: no repository for this organization yet", ErrNotFound)
	}
	var signers []*Signer
	for _, k := range stored {
		priv, err := x509.ParsePKCS8PrivateKey(k.PKCS8)
		if err != nil {
			return nil, fmt.Errorf("TUF %s key of org %s is damaged: %w", k.Role, orgID, err)
		}
		sg, err := NewSigner(k.Role, priv.(crypto.Signer))
		if err != nil {
			return nil, err
		}
		signers = append(signers, sg)
	}
	r, err := Open(ctx, s.meta(orgID), Config{Clock: s.clock, Signers: signers})
	if err != nil {
		return nil, err
	}
	if len(stored) == 0 {
		if signers, stored, err = newOnlineKeys(); err != nil {
			return nil, err
		}
		if err := s.keys.SaveTUFKeys(ctx, orgID, stored); err != nil {
			return nil, err
		}
		if err := r.Init(ctx, signers, map[Role]int{RoleRoot: 1, RoleTargets: 1, RoleSnapshot: 1, RoleTimestamp: 1}); err != nil {
			return nil, err
		}
		s.log.Warn("created a TUF image repository with ALL signing keys online (root and targets included): "+
			"a compromise of this server can sign updates; for production run 'steward ctl tuf init' with offline keys before the first release (docs/keys.md)",
			"org_id", orgID)
		if s.audit != nil { // record logs a failure; the release that got here is already committed
			_ = s.record(ctx, access.Principal{OrgID: orgID, Actor: access.System("tuf")}, "tuf.init",
				map[string]any{"online_keys": keyIDs(signers), "all_keys_online": true})
		}
	}
	s.repos[orgID] = r
	return r, nil
}

func newOnlineKeys() ([]*Signer, []StoredKey, error) {
	var signers []*Signer
	var stored []StoredKey
	for _, role := range []Role{RoleRoot, RoleTargets, RoleSnapshot, RoleTimestamp} {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		sg, err := NewSigner(role, priv)
		if err != nil {
			return nil, nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			return nil, nil, err
		}
		signers = append(signers, sg)
		stored = append(stored, StoredKey{Role: role, KeyID: sg.KeyID(), PKCS8: der})
	}
	return signers, stored, nil
}

// Publish signs targets into an organization's repository, creating the
// repository on first use.
func (s *Service) Publish(ctx context.Context, orgID string, targets []Target) error {
	r, err := s.repo(ctx, orgID, true)
	if err != nil {
		return err
	}
	out, err := r.AddTargets(ctx, targets)
	if err == nil && !out.Published {
		// Offline targets keys: the release is recorded but devices see
		// it only once targets version out.Version is signed.
		s.log.Warn("release targets staged: targets version awaits offline signatures ('steward ctl tuf status'); devices do not see the release until then",
			"org_id", orgID, "targets_version", out.Version)
	}
	return err
}

// Handler serves an organization's repository; 404 until it has one.
func (s *Service) Handler(orgID string) http.Handler {
	return Handler(s.meta(orgID), s.targets)
}

// Refresh re-signs the timestamp (and snapshot) of every repository whose
// copy is close to expiry.
func (s *Service) Refresh(ctx context.Context) error {
	orgs, err := s.keys.TUFOrgs(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, org := range orgs {
		r, err := s.repo(ctx, org, false)
		// Nothing to renew while offline keys have not signed version 1.
		if err == nil && r.published() {
			_, err = r.RefreshTimestamp(ctx, s.clock.Now())
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("org %s: %w", org, err))
		}
	}
	return errors.Join(errs...)
}

// RunRefresher calls Refresh every interval (and at once) until ctx ends.
func (s *Service) RunRefresher(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := s.Refresh(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("TUF timestamp refresh failed: devices will see expired metadata if this persists", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
