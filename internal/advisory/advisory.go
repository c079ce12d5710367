// Package advisory owns security advisories: drafts written by the vendor,
// published as CSAF 2.0 documents in two profiles (csaf_security_advisory
// and csaf_vex), signed with the organization's OpenPGP key, and served as
// a CSAF trusted provider (directory and ROLIE distribution) with a
// human-readable page per advisory.
//
// A draft is validated whole on every save, so a saved draft can always be
// published. Publishing freezes a numbered version: the documents' bytes,
// their SHA-256/SHA-512 and detached signatures are stored and never
// rewritten; an update is a new version with the earlier ones in its
// revision history.
package advisory

import (
	"context"
	"time"

	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/audit"
	"github.com/steward-iot/steward/internal/notify"
)

// Profile is a CSAF 2.0 profile, written as /document/category.
type Profile string

const (
	ProfileSecurityAdvisory Profile = "csaf_security_advisory"
	ProfileVEX              Profile = "csaf_vex"
)

// Profiles lists the profiles every published version is written in.
var Profiles = []Profile{ProfileSecurityAdvisory, ProfileVEX}

// ParseProfile accepts a profile name, or "advisory"/"vex" for short.
func ParseProfile(s string) (Profile, bool) {
	switch s {
	case "", string(ProfileSecurityAdvisory), "advisory", "security_advisory":
		return ProfileSecurityAdvisory, true
	case string(ProfileVEX), "vex":
		return ProfileVEX, true
	}
	return "", false
}

// Status is where an advisory is in its life.
type Status string

const (
	StatusDraft     Status = "draft"     // never published
	StatusPublished Status = "published" // at least one version is public
)

// Publisher is the party that issues the advisory (/document/publisher).
type Publisher struct {
	Name string `json:"name"`
	// Namespace is the publisher's URL, e.g. https://acme.example; with the
	// tracking id it names a document globally.
	Namespace        string `json:"namespace" doc:"absolute URL of the publisher, e.g. https://acme.example"`
	Category         string `json:"category,omitempty" enum:"vendor,coordinator,discoverer,other,translator,user" doc:"vendor when empty"`
	ContactDetails   string `json:"contact_details,omitempty"`
	IssuingAuthority string `json:"issuing_authority,omitempty"`
}

// Reference is a link to more information.
type Reference struct {
	URL     string `json:"url"`
	Summary string `json:"summary"`
}

// Product is one version of one product, a leaf of the CSAF product tree
// (vendor → product name → product version).
type Product struct {
	// ID is the CSAF product_id the vulnerabilities' statuses refer to.
	ID      string `json:"id" doc:"CSAF product_id, referenced by the vulnerabilities; no spaces"`
	Vendor  string `json:"vendor"`
	Name    string `json:"name"`
	Version string `json:"version" doc:"one version, never a range"`
	Purl    string `json:"purl,omitempty"`
	CPE     string `json:"cpe,omitempty"`
	// HardwareID is written as a model number.
	HardwareID string `json:"hardware_id,omitempty"`
}

// VulnID is an identifier from another system (OSV, GHSA, a vendor tracker).
type VulnID struct {
	System string `json:"system_name"`
	Text   string `json:"text"`
}

// CWE names a weakness; CSAF wants both the id and the catalog's name.
type CWE struct {
	ID   string `json:"id" doc:"e.g. CWE-787"`
	Name string `json:"name" doc:"the CWE catalog name, e.g. Out-of-bounds Write"`
}

// CVSS3 is a CVSS v3.0 or v3.1 base rating. The score and severity are
// computed from the vector; given ones must agree with it.
type CVSS3 struct {
	Vector    string  `json:"vector" doc:"CVSS:3.1/… or CVSS:3.0/…"`
	BaseScore float64 `json:"base_score,omitempty"`
	Severity  string  `json:"severity,omitempty" enum:"NONE,LOW,MEDIUM,HIGH,CRITICAL"`
}

// NotAffected says a product is not affected, and why: CSAF VEX needs a
// justification flag or an impact statement for each such product.
type NotAffected struct {
	ProductID     string `json:"product_id"`
	Justification string `json:"justification,omitempty" enum:"component_not_present,vulnerable_code_not_present,vulnerable_code_not_in_execute_path,vulnerable_code_cannot_be_controlled_by_adversary,inline_mitigations_already_exist"`
	Impact        string `json:"impact,omitempty" doc:"impact statement; required when there is no justification"`
}

// Remediation categories.
const (
	RemediationVendorFix     = "vendor_fix"
	RemediationMitigation    = "mitigation"
	RemediationWorkaround    = "workaround"
	RemediationNoneAvailable = "none_available"
	RemediationNoFixPlanned  = "no_fix_planned" // e.g. the product is past its end of support
)

// Remediation tells the owners of some products what to do.
type Remediation struct {
	Category   string   `json:"category" enum:"vendor_fix,mitigation,workaround,none_available,no_fix_planned"`
	Details    string   `json:"details" doc:"e.g. Update to release 2.3.1"`
	URL        string   `json:"url,omitempty"`
	ProductIDs []string `json:"product_ids"`
}

// Threat describes impact, exploit status or the targeted set.
type Threat struct {
	Category   string   `json:"category" enum:"impact,exploit_status,target_set"`
	Details    string   `json:"details"`
	ProductIDs []string `json:"product_ids,omitempty"`
}

// Vulnerability is one vulnerability the advisory speaks about, with the
// status of every listed product.
type Vulnerability struct {
	CVE     string   `json:"cve,omitempty"`
	IDs     []VulnID `json:"ids,omitempty" doc:"OSV, GHSA or other ids; needed when there is no CVE"`
	Title   string   `json:"title,omitempty"`
	Summary string   `json:"summary"`
	Details string   `json:"details,omitempty"`
	CWE     *CWE     `json:"cwe,omitempty"`
	CVSS3   *CVSS3   `json:"cvss_v3,omitempty"`
	// CVSS4 is a CVSS 4.0 vector. CSAF 2.0 has no field for it, so it is
	// written as a note.
	CVSS4         string     `json:"cvss_v4,omitempty" doc:"CVSS 4.0 vector, written as a note (CSAF 2.0 has no field for it)"`
	DiscoveryDate *time.Time `json:"discovery_date,omitempty"`

	Fixed              []string      `json:"fixed,omitempty" doc:"product ids"`
	KnownAffected      []string      `json:"known_affected,omitempty" doc:"product ids; each needs a remediation"`
	KnownNotAffected   []NotAffected `json:"known_not_affected,omitempty"`
	UnderInvestigation []string      `json:"under_investigation,omitempty" doc:"product ids"`

	Remediations []Remediation `json:"remediations,omitempty"`
	Threats      []Threat      `json:"threats,omitempty"`
	References   []Reference   `json:"references,omitempty"`
}

// Draft is everything an advisory says. The engineer builds it from
// vulnerabilities, releases and products; Steward turns it into CSAF.
type Draft struct {
	// TrackingID is generated (PREFIX-YYYY-NNNN, per organization and year)
	// when empty, and fixed once a version is published.
	TrackingID string    `json:"tracking_id,omitempty" doc:"generated when empty; cannot change after publishing"`
	Title      string    `json:"title"`
	Publisher  Publisher `json:"publisher"`
	// TLP is WHITE unless set. CLEAR (TLP 2.0) is written as WHITE, the
	// label CSAF 2.0 knows. Only WHITE advisories are served publicly.
	TLP             string          `json:"tlp,omitempty" enum:"WHITE,CLEAR,GREEN,AMBER,RED" doc:"WHITE when empty; CLEAR is written as WHITE"`
	Lang            string          `json:"lang,omitempty" doc:"BCP 47 language tag; en when empty"`
	Summary         string          `json:"summary"`
	Details         string          `json:"details,omitempty"`
	References      []Reference     `json:"references,omitempty"`
	Products        []Product       `json:"products"`
	Vulnerabilities []Vulnerability `json:"vulnerabilities"`
}

// Advisory is one advisory: its current draft and where it stands.
type Advisory struct {
	ID         string `json:"id"`
	OrgID      string `json:"org_id"`
	TrackingID string `json:"tracking_id"`
	Title      string `json:"title"`
	TLP        string `json:"tlp"`
	Status     Status `json:"status" enum:"draft,published"`
	// Version is the latest published version, 0 before the first.
	Version int `json:"version" doc:"latest published version; 0 before the first"`
	// Pending is set while the draft differs from the latest version.
	Pending            bool       `json:"pending_changes" doc:"the draft differs from the latest published version"`
	InitialReleaseDate *time.Time `json:"initial_release_date,omitempty"`
	CurrentReleaseDate *time.Time `json:"current_release_date,omitempty"`
	CreatedAt          time.Time  `json:"created_at"`
	UpdatedAt          time.Time  `json:"updated_at"`
	Draft              Draft      `json:"draft"`
	// Versions lists the published versions, oldest first (Get only).
	Versions []Version `json:"versions,omitempty" doc:"published versions, oldest first; filled by get, not by list"`
	// FileStem is the tracking id as a CSAF file name without ".json".
	FileStem string `json:"-"`
}

// Version is one published, immutable version of an advisory.
type Version struct {
	AdvisoryID string `json:"advisory_id"`
	OrgID      string `json:"org_id"`
	Version    int    `json:"version"`
	TrackingID string `json:"tracking_id"`
	Title      string `json:"title"`
	TLP        string `json:"tlp"`
	// Summary is this version's revision_history entry.
	Summary            string       `json:"summary" doc:"the revision history entry of this version"`
	Severity           string       `json:"severity,omitempty" doc:"aggregate severity: the highest CVSS rating"`
	ReleasedAt         time.Time    `json:"released_at" doc:"current_release_date of this version"`
	InitialReleaseDate time.Time    `json:"initial_release_date"`
	PublishedBy        access.Actor `json:"published_by"`
	KeyFingerprint     string       `json:"key_fingerprint" doc:"OpenPGP key that signed the documents"`
	Documents          []Document   `json:"documents"`
	// Draft is the content as published; only filled when one version is read.
	Draft *Draft `json:"-"`
}

// Document is one CSAF document of a version: its bytes (not in JSON
// answers; fetch them through Service.Document), digests and signature.
type Document struct {
	AdvisoryID string  `json:"advisory_id"`
	Version    int     `json:"version" doc:"0 is an unsigned preview of the current draft"`
	Profile    Profile `json:"profile" enum:"csaf_security_advisory,csaf_vex"`
	TrackingID string  `json:"tracking_id" doc:"the document's own tracking id; the VEX document's ends in -VEX"`
	FileName   string  `json:"file_name"`
	// Path is where the provider serves it, below /.well-known/csaf/.
	Path               string    `json:"path" doc:"path below /.well-known/csaf/ (public only for TLP:WHITE)"`
	TLP                string    `json:"tlp"`
	Title              string    `json:"title"`
	Severity           string    `json:"severity,omitempty"`
	SHA256             string    `json:"sha256"`
	SHA512             string    `json:"sha512"`
	Signature          string    `json:"signature,omitempty" doc:"armored OpenPGP detached signature over the bytes"`
	KeyFingerprint     string    `json:"key_fingerprint,omitempty"`
	ReleasedAt         time.Time `json:"released_at"`
	InitialReleaseDate time.Time `json:"initial_release_date"`
	Data               []byte    `json:"-"`
}

// SigningKey is an organization's OpenPGP key for advisories. Retired keys
// stay listed so that older documents still verify.
type SigningKey struct {
	OrgID       string     `json:"org_id"`
	Fingerprint string     `json:"fingerprint" doc:"upper-case hex"`
	PublicKey   string     `json:"public_key" doc:"armored OpenPGP public key"`
	CreatedAt   time.Time  `json:"created_at"`
	RetiredAt   *time.Time `json:"retired_at,omitempty"`
	// Private is the armored, unencrypted private key (stored like the
	// instance's other online keys); never returned by the API.
	Private string `json:"-"`
}

// PublishRequest is the body of a publish call.
type PublishRequest struct {
	Summary string `json:"summary,omitempty" doc:"revision history entry; Initial release / Updated advisory when empty"`
}

// ImportKeyRequest is the body of a signing key import.
type ImportKeyRequest struct {
	PrivateKey string `json:"private_key" doc:"armored OpenPGP private key"`
	Passphrase string `json:"passphrase,omitempty" doc:"decrypts a protected key; the key is stored decrypted"`
}

// PublishedEvent is the payload of the "advisory.published" notification.
type PublishedEvent struct {
	AdvisoryID string   `json:"advisory_id"`
	TrackingID string   `json:"tracking_id"`
	Version    int      `json:"version"`
	Title      string   `json:"title"`
	TLP        string   `json:"tlp"`
	Severity   string   `json:"severity,omitempty"`
	CVEs       []string `json:"cves"`
	Documents  []string `json:"documents" doc:"paths below /.well-known/csaf/"`
}

// Notifier raises notifications; the notify service implements it.
type Notifier interface {
	Notify(ctx context.Context, m notify.Message) error
}

// NotificationType is the notify.Message type raised on publishing.
const NotificationType = "advisory.published"

// Tx is what the advisory service needs from a store transaction.
type Tx interface {
	AppendAudit(ctx context.Context, r audit.Record) (audit.Event, error)

	InsertAdvisory(ctx context.Context, a Advisory) error
	// UpdateAdvisory rewrites a's row if its version is still prevVersion,
	// else reports NotFound (so concurrent publishes cannot both win).
	UpdateAdvisory(ctx context.Context, a Advisory, prevVersion int) error
	// AdvisoryByID finds an advisory by id, tracking id or file stem.
	AdvisoryByID(ctx context.Context, orgID, ref string) (Advisory, error)
	ListAdvisories(ctx context.Context, orgID, after string, limit int) ([]Advisory, error)
	// NextTrackingNumber returns 1, 2, 3… per organization and year.
	NextTrackingNumber(ctx context.Context, orgID string, year int) (int, error)

	// InsertAdvisoryVersion stores a version and its documents (with data).
	InsertAdvisoryVersion(ctx context.Context, v Version) error
	// AdvisoryVersions lists versions oldest first, without drafts or data.
	AdvisoryVersions(ctx context.Context, orgID, advisoryID string) ([]Version, error)
	// AdvisoryVersion returns one version with its draft (documents without data).
	AdvisoryVersion(ctx context.Context, orgID, advisoryID string, version int) (Version, error)
	// AdvisoryDocument returns one stored document with its data.
	AdvisoryDocument(ctx context.Context, orgID, advisoryID string, version int, profile Profile) (Document, error)
	// PublishedDocuments lists the documents of each advisory's latest
	// version with that TLP label, without data.
	PublishedDocuments(ctx context.Context, orgID, tlp string) ([]Document, error)
	// PublishedDocument is one of those by file name, with data.
	PublishedDocument(ctx context.Context, orgID, tlp, fileName string) (Document, error)

	InsertSigningKey(ctx context.Context, k SigningKey) error
	RetireSigningKey(ctx context.Context, orgID, fingerprint string, at time.Time) error
	// ActiveSigningKey returns the key that signs, with its private part.
	ActiveSigningKey(ctx context.Context, orgID string) (SigningKey, error)
	// SigningKeys lists every key, oldest first, without private parts.
	SigningKeys(ctx context.Context, orgID string) ([]SigningKey, error)
}

// Store runs functions in read or write transactions.
type Store interface {
	Read(ctx context.Context, fn func(Tx) error) error
	Write(ctx context.Context, fn func(Tx) error) error
}
