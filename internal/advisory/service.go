package advisory

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/audit"
	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/id"
	"github.com/steward-iot/steward/internal/notify"
	"github.com/steward-iot/steward/internal/paging"
	"github.com/steward-iot/steward/internal/problem"
)

// PublicTLP is the only label the provider serves: TLP:WHITE documents
// must be reachable without authentication, and everything else must not be.
const PublicTLP = "WHITE"

// Options tune the service.
type Options struct {
	// Notifier, when set, is told of every published version.
	Notifier Notifier
	Logger   *slog.Logger
	// TrackingPrefix starts generated tracking ids (PREFIX-YYYY-NNNN);
	// "STEWARD" when empty.
	TrackingPrefix string
	// Engine is Steward's version, written into each document's generator.
	Engine string
}

// Service implements advisories.
type Service struct {
	store Store
	clock clock.Clock
	opts  Options
	log   *slog.Logger
}

// NewService returns the advisory service.
func NewService(s Store, c clock.Clock, o Options) *Service {
	if c == nil {
		c = clock.Real
	}
	if o.TrackingPrefix == "" {
		o.TrackingPrefix = "STEWARD"
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{store: s, clock: c, opts: o, log: log}
}

func draftJSON(d Draft) string {
	b, err := json.Marshal(d)
	if err != nil {
		panic(err) // a Draft is plain data; it always encodes
	}
	return string(b)
}

// CreateDraft validates and stores a new draft, generating its tracking id
// when the draft has none.
func (s *Service) CreateDraft(ctx context.Context, p access.Principal, d Draft) (Advisory, error) {
	if err := p.Require(access.AdvisoryWrite); err != nil {
		return Advisory{}, err
	}
	d, err := d.Normalize()
	if err != nil {
		return Advisory{}, err
	}
	now := s.clock.Now()
	a := Advisory{ID: id.New(), OrgID: p.OrgID, Title: d.Title, TLP: d.TLP, Status: StatusDraft, Pending: true,
		CreatedAt: now, UpdatedAt: now}
	err = s.store.Write(ctx, func(tx Tx) error {
		if d.TrackingID == "" {
			if d.TrackingID, err = s.nextTrackingID(ctx, tx, p.OrgID, now.Year()); err != nil {
				return err
			}
		}
		a.TrackingID, a.FileStem, a.Draft = d.TrackingID, FileStem(d.TrackingID), d
		if err := tx.InsertAdvisory(ctx, a); err != nil {
			return err
		}
		_, err := tx.AppendAudit(ctx, audit.Record{OrgID: p.OrgID, Actor: p.Actor, Action: "advisory.create",
			TargetType: "advisory", TargetID: a.ID, Details: map[string]any{"tracking_id": a.TrackingID, "title": a.Title}})
		return err
	})
	return a, err
}

// nextTrackingID takes the organization's next number for the year,
// skipping numbers a hand-written tracking id already holds.
func (s *Service) nextTrackingID(ctx context.Context, tx Tx, orgID string, year int) (string, error) {
	for range 1000 {
		n, err := tx.NextTrackingNumber(ctx, orgID, year)
		if err != nil {
			return "", err
		}
		tid := fmt.Sprintf("%s-%d-%04d", s.opts.TrackingPrefix, year, n)
		if _, err := tx.AdvisoryByID(ctx, orgID, tid); problem.Is(err, problem.KindNotFound) {
			return tid, nil
		} else if err != nil {
			return "", err
		}
	}
	return "", problem.Conflict("no free tracking number for %d", year)
}

// UpdateDraft replaces the draft of an advisory. After the first
// publication the tracking id cannot change; the edits become the next
// version when published.
func (s *Service) UpdateDraft(ctx context.Context, p access.Principal, ref string, d Draft) (Advisory, error) {
	if err := p.Require(access.AdvisoryWrite); err != nil {
		return Advisory{}, err
	}
	d, err := d.Normalize()
	if err != nil {
		return Advisory{}, err
	}
	var a Advisory
	err = s.store.Write(ctx, func(tx Tx) error {
		var err error
		if a, err = tx.AdvisoryByID(ctx, p.OrgID, ref); err != nil {
			return err
		}
		if d.TrackingID == "" {
			d.TrackingID = a.TrackingID
		}
		if a.Version > 0 && d.TrackingID != a.TrackingID {
			return problem.InvalidField("tracking_id", "advisory %s is published; its tracking id cannot change", a.TrackingID)
		}
		a.Pending = true
		if a.Version > 0 {
			v, err := tx.AdvisoryVersion(ctx, p.OrgID, a.ID, a.Version)
			if err != nil {
				return err
			}
			a.Pending = v.Draft == nil || draftJSON(*v.Draft) != draftJSON(d)
		}
		a.TrackingID, a.FileStem, a.Title, a.TLP, a.Draft, a.UpdatedAt = d.TrackingID, FileStem(d.TrackingID), d.Title, d.TLP, d, s.clock.Now()
		if err := tx.UpdateAdvisory(ctx, a, a.Version); err != nil {
			return err
		}
		_, err = tx.AppendAudit(ctx, audit.Record{OrgID: p.OrgID, Actor: p.Actor, Action: "advisory.update",
			TargetType: "advisory", TargetID: a.ID, Details: map[string]any{"tracking_id": a.TrackingID, "title": a.Title}})
		return err
	})
	return a, err
}

// Get returns an advisory by id, tracking id or file name, with its
// published versions.
func (s *Service) Get(ctx context.Context, p access.Principal, ref string) (Advisory, error) {
	if err := p.Require(access.VulnRead); err != nil {
		return Advisory{}, err
	}
	var a Advisory
	err := s.store.Read(ctx, func(tx Tx) error {
		var err error
		if a, err = tx.AdvisoryByID(ctx, p.OrgID, strings.TrimSuffix(ref, ".json")); err != nil {
			return err
		}
		a.Versions, err = tx.AdvisoryVersions(ctx, p.OrgID, a.ID)
		return err
	})
	return a, err
}

// List lists the organization's advisories, oldest first.
func (s *Service) List(ctx context.Context, p access.Principal, after string, limit int) ([]Advisory, string, error) {
	if err := p.Require(access.VulnRead); err != nil {
		return nil, "", err
	}
	return paging.List(ctx, s.store.Read, limit, func(tx Tx, limit int) ([]Advisory, error) {
		return tx.ListAdvisories(ctx, p.OrgID, after, limit)
	}, func(a Advisory) string { return a.ID })
}

// Publish freezes the current draft as the next version: both profiles
// are generated, validated, hashed, signed with the organization's key
// (generated on first use) and stored with an audit event in one
// transaction. Subscribers then hear of it as "advisory.published".
// summary is the revision history entry ("Initial release" by default).
func (s *Service) Publish(ctx context.Context, p access.Principal, ref, summary string) (Version, error) {
	if err := p.Require(access.AdvisoryWrite); err != nil {
		return Version{}, err
	}
	var e fieldErrors
	e.text("summary", &summary, false, maxShort)
	if err := e.err("invalid publish request"); err != nil {
		return Version{}, err
	}
	var a Advisory
	if err := s.store.Read(ctx, func(tx Tx) error {
		var err error
		a, err = tx.AdvisoryByID(ctx, p.OrgID, ref)
		return err
	}); err != nil {
		return Version{}, err
	}
	if err := s.ensureKey(ctx, p, a.Draft.Publisher.Name); err != nil {
		return Version{}, err
	}
	var v Version
	err := s.store.Write(ctx, func(tx Tx) error {
		var err error
		if a, err = tx.AdvisoryByID(ctx, p.OrgID, a.ID); err != nil {
			return err
		}
		if a.Version > 0 && !a.Pending {
			return problem.Conflict("advisory %s has no changes since version %d", a.TrackingID, a.Version)
		}
		// Re-check under today's rules: a draft saved by an older
		// Steward must still validate before it is signed.
		d, err := a.Draft.Normalize()
		if err != nil {
			return err
		}
		key, err := tx.ActiveSigningKey(ctx, p.OrgID)
		if err != nil {
			return err
		}
		entity, err := parseSigningKey(key.Private, "", s.clock.Now())
		if err != nil {
			return fmt.Errorf("the stored advisory key %s of org %s is unusable: %w", key.Fingerprint, p.OrgID, err)
		}
		prev, err := tx.AdvisoryVersions(ctx, p.OrgID, a.ID)
		if err != nil {
			return err
		}
		now := s.clock.Now()
		v = Version{AdvisoryID: a.ID, OrgID: p.OrgID, Version: a.Version + 1, TrackingID: d.TrackingID, Title: d.Title, TLP: d.TLP,
			Summary: summary, Severity: aggregateSeverity(d), ReleasedAt: now, InitialReleaseDate: now, PublishedBy: p.Actor,
			KeyFingerprint: key.Fingerprint, Draft: &d}
		if v.Summary == "" {
			v.Summary = "Initial release"
			if v.Version > 1 {
				v.Summary = "Updated advisory"
			}
		}
		if a.InitialReleaseDate != nil {
			v.InitialReleaseDate = *a.InitialReleaseDate
		}
		t := s.tracking(TrackingFinal, v, prev)
		for _, prof := range Profiles {
			doc, err := s.document(d, t, prof)
			if err != nil {
				return err
			}
			if doc.Signature, err = sign(entity, doc.Data, now); err != nil {
				return err
			}
			doc.AdvisoryID, doc.KeyFingerprint = a.ID, key.Fingerprint
			v.Documents = append(v.Documents, doc)
		}
		if err := tx.InsertAdvisoryVersion(ctx, v); err != nil {
			return err
		}
		prevVersion := a.Version
		a.Status, a.Version, a.Pending, a.UpdatedAt = StatusPublished, v.Version, false, now
		a.InitialReleaseDate, a.CurrentReleaseDate = &v.InitialReleaseDate, &v.ReleasedAt
		if err := tx.UpdateAdvisory(ctx, a, prevVersion); problem.Is(err, problem.KindNotFound) {
			return problem.Conflict("advisory %s was published concurrently; reload and retry", a.TrackingID)
		} else if err != nil {
			return err
		}
		docs := map[string]any{}
		for _, doc := range v.Documents {
			docs[string(doc.Profile)] = map[string]string{"path": doc.Path, "sha256": doc.SHA256}
		}
		_, err = tx.AppendAudit(ctx, audit.Record{OrgID: p.OrgID, Actor: p.Actor, Action: "advisory.publish",
			TargetType: "advisory", TargetID: a.ID, Details: map[string]any{"tracking_id": v.TrackingID, "version": v.Version,
				"tlp": v.TLP, "key": key.Fingerprint, "documents": docs}})
		return err
	})
	if err != nil {
		return Version{}, err
	}
	s.notify(ctx, v)
	for i := range v.Documents {
		v.Documents[i].Data = nil
	}
	return v, nil
}

// tracking assembles /document/tracking for version v after prev.
func (s *Service) tracking(status string, v Version, prev []Version) Tracking {
	t := Tracking{Status: status, Version: v.Version, InitialReleaseDate: v.InitialReleaseDate, CurrentReleaseDate: v.ReleasedAt,
		Engine: s.opts.Engine}
	for _, pv := range prev {
		if pv.Version < v.Version {
			t.Revisions = append(t.Revisions, Revision{Number: pv.Version, Date: pv.ReleasedAt, Summary: pv.Summary})
		}
	}
	t.Revisions = append(t.Revisions, Revision{Number: v.Version, Date: v.ReleasedAt, Summary: v.Summary})
	return t
}

// document generates one profile and describes it.
func (s *Service) document(d Draft, t Tracking, prof Profile) (Document, error) {
	data, err := Generate(d, t, prof)
	if err != nil {
		return Document{}, err
	}
	s256, s512 := sha256.Sum256(data), sha512.Sum512(data)
	tid := documentTrackingID(d.TrackingID, prof)
	doc := Document{Version: t.Version, Profile: prof, TrackingID: tid, FileName: FileStem(tid) + ".json", TLP: d.TLP, Title: d.Title,
		Severity: aggregateSeverity(d),
		SHA256:   hex.EncodeToString(s256[:]), SHA512: hex.EncodeToString(s512[:]),
		ReleasedAt: t.CurrentReleaseDate, InitialReleaseDate: t.InitialReleaseDate, Data: data}
	doc.Path = DocumentPath(doc.TLP, doc.InitialReleaseDate, doc.FileName)
	return doc, nil
}

// DocumentPath is where the provider serves a document, below
// /.well-known/csaf/: <tlp>/<year of the initial release>/<file name>.
func DocumentPath(tlp string, initial time.Time, fileName string) string {
	return fmt.Sprintf("%s/%d/%s", strings.ToLower(tlp), initial.UTC().Year(), fileName)
}

func (s *Service) notify(ctx context.Context, v Version) {
	if s.opts.Notifier == nil {
		return
	}
	ev := PublishedEvent{AdvisoryID: v.AdvisoryID, TrackingID: v.TrackingID, Version: v.Version, Title: v.Title, TLP: v.TLP,
		Severity: v.Severity, CVEs: []string{}}
	if v.Draft != nil {
		for _, vu := range v.Draft.Vulnerabilities {
			if vu.CVE != "" {
				ev.CVEs = append(ev.CVEs, vu.CVE)
			}
		}
	}
	for _, d := range v.Documents {
		ev.Documents = append(ev.Documents, d.Path)
	}
	m := notify.Message{OrgID: v.OrgID, Type: NotificationType, Data: ev,
		Subject: fmt.Sprintf("Security advisory %s version %d: %s", v.TrackingID, v.Version, v.Title)}
	// The version is committed; a failed notification must not make the
	// caller publish again, so it is logged, not returned.
	if err := s.opts.Notifier.Notify(ctx, m); err != nil {
		s.log.Warn("advisory published, notification failed", "org", v.OrgID, "tracking_id", v.TrackingID, "version", v.Version, "err", err)
	}
}

// aggregateSeverity is the highest severity of the draft's ratings.
func aggregateSeverity(d Draft) string {
	worst := ""
	for _, v := range d.Vulnerabilities {
		for _, sev := range vulnSeverities(v) {
			if severityRank(sev) > severityRank(worst) {
				worst = sev
			}
		}
	}
	return titleCase(worst)
}

func vulnSeverities(v Vulnerability) []string {
	var out []string
	if v.CVSS3 != nil {
		if r, err := rateCVSS3(*v.CVSS3); err == nil {
			out = append(out, r.severity)
		}
	}
	if v.CVSS4 != "" {
		if r, err := rateCVSS4(v.CVSS4); err == nil {
			out = append(out, r.severity)
		}
	}
	return out
}

// Document returns one CSAF document of an advisory. Version 0 is an
// unsigned preview of the current draft (status "draft"); published
// versions come back byte for byte as stored, with their signature.
func (s *Service) Document(ctx context.Context, p access.Principal, ref string, version int, prof Profile) (Document, error) {
	if err := p.Require(access.VulnRead); err != nil {
		return Document{}, err
	}
	if prof != ProfileSecurityAdvisory && prof != ProfileVEX {
		return Document{}, problem.InvalidField("profile", "must be %s or %s", ProfileSecurityAdvisory, ProfileVEX)
	}
	if version < 0 {
		return Document{}, problem.InvalidField("version", "must be 0 (draft preview) or a published version")
	}
	var doc Document
	err := s.store.Read(ctx, func(tx Tx) error {
		a, err := tx.AdvisoryByID(ctx, p.OrgID, ref)
		if err != nil {
			return err
		}
		if version > 0 {
			doc, err = tx.AdvisoryDocument(ctx, p.OrgID, a.ID, version, prof)
			return err
		}
		prev, err := tx.AdvisoryVersions(ctx, p.OrgID, a.ID)
		if err != nil {
			return err
		}
		now := s.clock.Now()
		v := Version{Version: a.Version + 1, ReleasedAt: now, InitialReleaseDate: now, Summary: "Draft"}
		if a.InitialReleaseDate != nil {
			v.InitialReleaseDate = *a.InitialReleaseDate
		}
		if doc, err = s.document(a.Draft, s.tracking(TrackingDraft, v, prev), prof); err != nil {
			return err
		}
		doc.AdvisoryID, doc.Version = a.ID, 0
		return nil
	})
	return doc, err
}

// SigningKeys lists the organization's advisory keys (public parts).
func (s *Service) SigningKeys(ctx context.Context, p access.Principal) ([]SigningKey, error) {
	if err := p.Require(access.VulnRead); err != nil {
		return nil, err
	}
	var keys []SigningKey
	err := s.store.Read(ctx, func(tx Tx) error {
		var err error
		keys, err = tx.SigningKeys(ctx, p.OrgID)
		return err
	})
	if keys == nil {
		keys = []SigningKey{}
	}
	return keys, err
}

// ImportKey makes an existing OpenPGP key (armored private key, decrypted
// with passphrase if protected) the organization's signing key. The key it
// replaces is retired but still published, so older signatures verify.
func (s *Service) ImportKey(ctx context.Context, p access.Principal, armored, passphrase string) (SigningKey, error) {
	if err := p.Require(access.AdvisoryWrite); err != nil {
		return SigningKey{}, err
	}
	now := s.clock.Now()
	e, err := parseSigningKey(armored, passphrase, now)
	if err != nil {
		return SigningKey{}, err
	}
	k, err := signingKeyOf(p.OrgID, e, now)
	if err != nil {
		return SigningKey{}, err
	}
	err = s.store.Write(ctx, func(tx Tx) error {
		cur, err := tx.ActiveSigningKey(ctx, p.OrgID)
		switch {
		case err == nil && cur.Fingerprint == k.Fingerprint:
			k = cur
			return nil // already the signing key
		case err == nil:
			if err := tx.RetireSigningKey(ctx, p.OrgID, cur.Fingerprint, now); err != nil {
				return err
			}
		case !problem.Is(err, problem.KindNotFound):
			return err
		}
		if err := tx.InsertSigningKey(ctx, k); err != nil {
			return err
		}
		details := map[string]any{"fingerprint": k.Fingerprint}
		if cur.Fingerprint != "" {
			details["retired"] = cur.Fingerprint
		}
		_, err = tx.AppendAudit(ctx, audit.Record{OrgID: p.OrgID, Actor: p.Actor, Action: "advisory.key.import",
			TargetType: "advisory_key", TargetID: k.Fingerprint, Details: details})
		return err
	})
	k.Private = ""
	return k, err
}

// ensureKey generates the organization's signing key if it has none.
func (s *Service) ensureKey(ctx context.Context, p access.Principal, publisher string) error {
	var have bool
	if err := s.store.Read(ctx, func(tx Tx) error {
		_, err := tx.ActiveSigningKey(ctx, p.OrgID)
		if problem.Is(err, problem.KindNotFound) {
			return nil
		}
		have = err == nil
		return err
	}); err != nil || have {
		return err
	}
	now := s.clock.Now()
	k, err := newSigningKey(p.OrgID, publisher, now)
	if err != nil {
		return err
	}
	err = s.store.Write(ctx, func(tx Tx) error {
		if err := tx.InsertSigningKey(ctx, k); err != nil {
			return err
		}
		_, err := tx.AppendAudit(ctx, audit.Record{OrgID: p.OrgID, Actor: p.Actor, Action: "advisory.key.generate",
			TargetType: "advisory_key", TargetID: k.Fingerprint, Details: map[string]any{"fingerprint": k.Fingerprint}})
		return err
	})
	if problem.Is(err, problem.KindConflict) {
		return nil // a concurrent publish generated one first; use that
	}
	return err
}
