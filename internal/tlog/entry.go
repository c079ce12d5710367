package tlog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/problem"
)

// Entry kinds.
const (
	KindRelease  = "release"  // a release of a product
	KindMetadata = "metadata" // a signed TUF metadata version
)

// Entry is what one leaf records. Release entries fill the release fields,
// metadata entries the metadata fields; the others stay empty.
type Entry struct {
	Kind string `json:"kind"`
	Org  string `json:"org" doc:"organization slug"`

	Product        string     `json:"product,omitempty" doc:"product slug"`
	Version        string     `json:"version,omitempty" doc:"release version"`
	ReleaseCounter int64      `json:"release_counter,omitempty"`
	Artifacts      []Artifact `json:"artifacts,omitempty"`

	Role            string `json:"role,omitempty" doc:"TUF role"`
	MetadataVersion int64  `json:"metadata_version,omitempty"`
	SHA256          string `json:"sha256,omitempty" doc:"sha256 of the signed metadata file"`

	// LoggedAt is set by Log.Append.
	LoggedAt time.Time `json:"logged_at"`
}

// Artifact names one file of a release by content.
type Artifact struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
}

// Leaf returns the canonical encoding of e: JSON with the fields in the
// order above, artifacts sorted by name, no HTML escaping, no insignificant
// whitespace, and LoggedAt in UTC at microsecond precision. Equal entries
// always give the same bytes and so the same leaf hash.
func (e Entry) Leaf() ([]byte, error) {
	e.LoggedAt = clock.Norm(e.LoggedAt)
	if err := e.validate(); err != nil {
		return nil, err
	}
	return e.canonical()
}

// canonical encodes e without validating it.
func (e Entry) canonical() ([]byte, error) {
	// Sort a copy: the caller's slice is not ours to reorder.
	e.Artifacts = slices.Clone(e.Artifacts)
	slices.SortFunc(e.Artifacts, func(a, b Artifact) int { return strings.Compare(a.Name, b.Name) })
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return nil, fmt.Errorf("tlog: encoding entry: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Key names what e is about, so that its entry can be found again from
// what update metadata says: a release by product and release counter (the
// fields a device sees in its signed targets), a metadata version by role
// and version. It leaves out the time and the digests, which the finder
// checks in the leaf itself; and the organization, because each log holds
// one organization's entries. One key normally has one entry, but may have
// more: a metadata version re-signed after a failed write is logged again.
func (e Entry) Key() string {
	if e.Kind == KindRelease {
		return ReleaseKey(e.Product, e.ReleaseCounter)
	}
	return MetadataKey(e.Role, e.MetadataVersion)
}

// ReleaseKey is the Key of the release entries of product with counter.
func ReleaseKey(product string, counter int64) string {
	return lookupKey(KindRelease, product, counter)
}

// MetadataKey is the Key of the entries of a metadata role's version.
func MetadataKey(role string, version int64) string {
	return lookupKey(KindMetadata, role, version)
}

// lookupKey encodes as a JSON array, which no two different inputs share.
func lookupKey(kind, name string, n int64) string {
	b, _ := json.Marshal([]any{kind, name, n}) // strings and numbers always marshal
	return string(b)
}

// SameExceptTime reports whether a and b record the same thing, ignoring
// when each was logged: what a caller compares before appending an entry
// again, and a verifier between the leaf it was served and the entry it
// expected.
func SameExceptTime(a, b Entry) bool {
	a.LoggedAt, b.LoggedAt = time.Time{}, time.Time{}
	la, errA := a.canonical()
	lb, errB := b.canonical()
	return errA == nil && errB == nil && bytes.Equal(la, lb)
}

// ParseEntry decodes a leaf and checks that it is a valid entry in
// canonical form, so that a leaf a client accepts is one the log could have
// written.
func ParseEntry(leaf []byte) (Entry, error) {
	var e Entry
	dec := json.NewDecoder(bytes.NewReader(leaf))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return Entry{}, fmt.Errorf("tlog: entry is not valid JSON: %w", err)
	}
	canon, err := e.Leaf()
	if err != nil {
		return Entry{}, err
	}
	if !bytes.Equal(canon, leaf) {
		return Entry{}, fmt.Errorf("tlog: entry is not in canonical form")
	}
	return e, nil
}

func (e *Entry) validate() error {
	if err := text("org", e.Org); err != nil {
		return err
	}
	if e.LoggedAt.IsZero() {
		return problem.InvalidField("logged_at", "is missing")
	}
	release := e.Product != "" || e.Version != "" || e.ReleaseCounter != 0 || len(e.Artifacts) != 0
	metadata := e.Role != "" || e.MetadataVersion != 0 || e.SHA256 != ""
	switch e.Kind {
	case KindRelease:
		if metadata {
			return problem.Invalid("a release entry has no role, metadata_version or sha256")
		}
		return e.validateRelease()
	case KindMetadata:
		if release {
			return problem.Invalid("a metadata entry has no product, version, release_counter or artifacts")
		}
		return e.validateMetadata()
	default:
		return problem.InvalidField("kind", "is %q, want %q or %q", e.Kind, KindRelease, KindMetadata)
	}
}

func (e *Entry) validateRelease() error {
	if err := text("product", e.Product); err != nil {
		return err
	}
	if err := text("version", e.Version); err != nil {
		return err
	}
	if e.ReleaseCounter < 1 {
		return problem.InvalidField("release_counter", "must be at least 1")
	}
	if len(e.Artifacts) == 0 {
		return problem.InvalidField("artifacts", "a release has at least one artifact")
	}
	seen := make(map[string]bool, len(e.Artifacts))
	for i, a := range e.Artifacts {
		field := fmt.Sprintf("artifacts[%d]", i)
		if err := text(field+".name", a.Name); err != nil {
			return err
		}
		if seen[a.Name] {
			return problem.InvalidField(field+".name", "%q is listed twice", a.Name)
		}
		seen[a.Name] = true
		if err := digest(field+".sha256", a.SHA256); err != nil {
			return err
		}
	}
	return nil
}

func (e *Entry) validateMetadata() error {
	if err := text("role", e.Role); err != nil {
		return err
	}
	if e.MetadataVersion < 1 {
		return problem.InvalidField("metadata_version", "must be at least 1")
	}
	return digest("sha256", e.SHA256)
}

// text checks a required string. Control characters and invalid UTF-8 are
// refused because JSON would escape or replace them, leaving more than one
// spelling of the same entry.
func text(field, s string) error {
	if s == "" {
		return problem.InvalidField(field, "is missing")
	}
	if !utf8.ValidString(s) || strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return problem.InvalidField(field, "must be UTF-8 text without control characters")
	}
	return nil
}

// digest checks a sha256 written as lowercase hex, the one spelling.
func digest(field, s string) error {
	if len(s) != 64 || strings.Trim(s, "0123456789abcdef") != "" {
		return problem.InvalidField(field, "must be 64 lowercase hex digits")
	}
	return nil
}
