// Package trust is the TUF 1.0 image repository of one vendor organization.
// go-tuf's metadata package builds, signs and verifies single documents but
// keeps no repository; this package does: it versions root, targets,
// snapshot and timestamp, links each to the one before (snapshot names the
// targets version, timestamp the snapshot version, length and hash), collects
// signatures from keys held offline until a role's threshold is met, rotates
// root keys, keeps the timestamp fresh, and serves the files with consistent
// snapshots to any unmodified go-tuf v2 client (see Handler).
//
// Metadata lifetimes default to DefaultExpiries: root 1 year and targets 3
// months, because people sign them, perhaps offline; snapshot 1 week and
// timestamp 1 day, because the server re-signs them unattended
// (RefreshTimestamp) and a frozen or replayed copy should go stale quickly.
// An online document is re-signed once less than a third of its life remains.
package trust

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/cjson"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/steward-iot/steward/internal/problem"
)

// Role is a top-level TUF role.
type Role string

// The four top-level roles. Root and targets may be signed offline; snapshot
// and timestamp are signed by the server.
const (
	RoleRoot      Role = metadata.ROOT
	RoleTargets   Role = metadata.TARGETS
	RoleSnapshot  Role = metadata.SNAPSHOT
	RoleTimestamp Role = metadata.TIMESTAMP
)

var allRoles = []Role{RoleRoot, RoleTargets, RoleSnapshot, RoleTimestamp}

func (r Role) valid() bool { return slices.Contains(allRoles, r) }

// Expiries says how long each role's metadata stays valid after signing.
// A zero field takes the value of DefaultExpiries.
type Expiries struct {
	Root, Targets, Snapshot, Timestamp time.Duration
}

// DefaultExpiries are the lifetimes the package documentation explains.
var DefaultExpiries = Expiries{
	Root:      365 * 24 * time.Hour,
	Targets:   90 * 24 * time.Hour,
	Snapshot:  7 * 24 * time.Hour,
	Timestamp: 24 * time.Hour,
}

func (e Expiries) withDefaults() (Expiries, error) {
	fields := []struct {
		name      string
		v         *time.Duration
		otherwise time.Duration
	}{
		{"root", &e.Root, DefaultExpiries.Root},
		{"targets", &e.Targets, DefaultExpiries.Targets},
		{"snapshot", &e.Snapshot, DefaultExpiries.Snapshot},
		{"timestamp", &e.Timestamp, DefaultExpiries.Timestamp},
	}
	for _, f := range fields {
		switch {
		case *f.v == 0:
			*f.v = f.otherwise
		case *f.v < time.Second:
			return e, problem.Invalid("%s expiry %s is shorter than a second", f.name, *f.v)
		}
	}
	return e, nil
}

// expiry is now+d as TUF writes it: UTC, whole seconds. go-tuf marshals
// time.Time as RFC 3339 with fractions and offsets, and the client
// re-encodes what it parsed before verifying, so anything but
// "YYYY-MM-DDTHH:MM:SSZ" would not survive the round trip.
func expiry(now time.Time, d time.Duration) time.Time {
	return now.Add(d).UTC().Truncate(time.Second)
}

// due reports whether metadata expiring at expires, with the given
// lifetime, has less than a third of it left at now: a daily timestamp is
// renewed after 16 hours, leaving 8 for a failed run to be retried before
// any device sees it expire.
func due(expires, now time.Time, life time.Duration) bool {
	return expires.Sub(now) < life/3
}

// Target is one file the targets role vouches for.
type Target struct {
	// Path is the target's name in the repository, e.g. "gateway/fw-1.2.0.bin".
	Path   string
	Length int64
	// Hashes by algorithm: "sha256" (required: the blob store is keyed by
	// it) and optionally "sha512".
	Hashes map[string][]byte
	// Custom is a JSON object devices check, e.g.
	// {"hardware_id":"gw-1","release_counter":7,"precursor_sha256":"…"}.
	Custom json.RawMessage
}

var hashSizes = map[string]int{"sha256": 32, "sha512": 64}

// file validates t and converts it to the metadata form.
func (t Target) file() (*metadata.TargetFiles, error) {
	if err := checkPath(t.Path); err != nil {
		return nil, err
	}
	if t.Length < 0 {
		return nil, problem.Invalid("target %q: negative length %d", t.Path, t.Length)
	}
	hashes := metadata.Hashes{}
	for alg, sum := range t.Hashes {
		size, ok := hashSizes[alg]
		if !ok {
			return nil, problem.Invalid("target %q: hash %q is not supported: use sha256 and sha512", t.Path, alg)
		}
		if len(sum) != size {
			return nil, problem.Invalid("target %q: %s hash has %d bytes, want %d", t.Path, alg, len(sum), size)
		}
		hashes[alg] = bytes.Clone(sum)
	}
	if hashes["sha256"] == nil {
		return nil, problem.Invalid("target %q: a sha256 hash is required", t.Path)
	}
	tf := &metadata.TargetFiles{Path: t.Path, Length: t.Length, Hashes: hashes}
	if len(t.Custom) > 0 {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(t.Custom, &obj); err != nil || obj == nil {
			return nil, problem.Invalid("target %q: custom must be a JSON object", t.Path)
		}
		// Canonical JSON has no floats; find out now rather than when signing.
		if _, err := cjson.EncodeCanonical(t.Custom); err != nil {
			return nil, problem.Invalid("target %q: custom cannot be canonical JSON (%v); use integers and strings", t.Path, err)
		}
		custom := json.RawMessage(bytes.Clone(t.Custom))
		tf.Custom = &custom
	}
	return tf, nil
}

// checkPath accepts slash-separated paths of URL-safe characters: the
// client puts the path into the download URL without escaping it.
func checkPath(p string) error {
	if p == "" || len(p) > 1024 {
		return problem.Invalid("target path must have 1 to 1024 characters")
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return problem.Invalid("target path %q has an empty, \".\" or \"..\" segment", p)
		}
	}
	for _, c := range p {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.ContainsRune("/._-+~", c)) {
			return problem.Invalid("target path %q: character %q is not allowed (letters, digits and /._-+~ are)", p, c)
		}
	}
	return nil
}

// sameTarget reports whether a and b describe the same file with the same
// custom data.
func sameTarget(a, b *metadata.TargetFiles) bool {
	ca, errA := cjson.EncodeCanonical(a)
	cb, errB := cjson.EncodeCanonical(b)
	return errA == nil && errB == nil && bytes.Equal(ca, cb)
}

// Outcome reports the version an operation produced and whether clients can
// fetch it yet. An unpublished version waits for AddSignature.
type Outcome struct {
	Role      Role
	Version   int64
	Published bool
}

// unsigned reports whether err only says that a threshold is not met yet.
func unsigned(err error) bool {
	var u *metadata.ErrUnsignedMetadata
	return errors.As(err, &u)
}

// short abbreviates a key id for messages.
func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func versioned(role Role, v int64) string { return fmt.Sprintf("%d.%s.json", v, role) }
