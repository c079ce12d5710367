package server_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/cjson"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/steward-iot/steward/agent/update"
	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/store/storetest"
	"github.com/steward-iot/steward/internal/trust"
)

// The attacks on TUF metadata: rollback, freeze, mix-and-match, and keys
// stolen below the threshold. go-tuf's updater refuses each, through the
// engine, before the director's targets are even compared.

// TestAttackMetadataRollback serves a device older metadata than it has
// already seen: the image repository's timestamp replayed from the
// database's past, a newer timestamp (signed with the online timestamp key
// read from the database) naming an older snapshot, and the director's
// metadata and the device's assignment restored from a database backup.
// In each, the older metadata names a release the device would otherwise
// install.
func TestAttackMetadataRollback(t *testing.T) {
	for _, d := range storetest.Dialects(t) {
		t.Run(string(d), func(t *testing.T) {
			v := startVictim(t, d, nil)
			r1, _ := v.release(t, "gw", "1.0.0", firmware(1, imageSize))
			oldTS := v.meta(t, "timestamp.json")
			_, oldSnapV, _ := v.published(t)
			oldSnap := v.meta(t, versionedName(oldSnapV, "snapshot"))
			r2, _ := v.release(t, "gw", "1.1.0", firmware(2, imageSize))
			// Each case puts the served timestamp back for the next.
			keepTimestamp := func(t *testing.T) {
				cur := v.meta(t, "timestamp.json")
				t.Cleanup(func() { v.putMeta(t, "timestamp.json", cur) })
			}

			t.Run("image repository timestamp replayed", func(t *testing.T) {
				dv := v.enroll(t, "ROLLBACK-TS", "gw-hw", "0.9.0", 0)
				seen := dv.refresh(t, "image")
				v.assign(t, dv, r1.ID) // signed in the replayed version too
				keepTimestamp(t)
				v.putMeta(t, "timestamp.json", oldTS)
				old, err := new(metadata.Metadata[metadata.TimestampType]).FromBytes(oldTS)
				if err != nil {
					t.Fatal(err)
				}
				err = refused(t, dv, &metadata.ErrBadVersionNumber{}, "image repository")
				if want := fmt.Sprintf("new timestamp version %d must be >= %d", old.Signed.Version, seen); !strings.Contains(err.Error(), want) {
					t.Fatalf("refused with %v; want %q", err, want)
				}
			})
			t.Run("image repository snapshot rolled back", func(t *testing.T) {
				dv := v.enroll(t, "ROLLBACK-SNAP", "gw-hw", "0.9.0", 0)
				dv.refresh(t, "image")
				v.assign(t, dv, r1.ID)
				keepTimestamp(t)
				ts, snapV, _ := v.published(t)
				forged := metadata.Timestamp(expiresIn(24 * time.Hour))
				forged.Signed.Version = ts.Signed.Version + 1
				forged.Signed.Meta["snapshot.json"] = metaFileOf(oldSnapV, oldSnap)
				v.putMeta(t, "timestamp.json", signMeta(t, forged, v.onlineKey(t, trust.RoleTimestamp)))
				err := refused(t, dv, &metadata.ErrBadVersionNumber{}, "image repository")
				if want := fmt.Sprintf("new snapshot version %d must be >= %d", oldSnapV, snapV); !strings.Contains(err.Error(), want) {
					t.Fatalf("refused with %v; want %q", err, want)
				}
			})
			t.Run("director metadata restored from a backup", func(t *testing.T) {
				dv := v.enroll(t, "ROLLBACK-DIR", "gw-hw", "0.9.0", 0)
				v.assign(t, dv, r1.ID)
				before := dv.refresh(t, "director")
				backup := v.directorMeta(t, dv.id)
				v.assign(t, dv, r2.ID)
				seen := dv.refresh(t, "director")
				if seen <= before {
					t.Fatalf("a new assignment did not raise the director timestamp: %d → %d", before, seen)
				}
				// The backup's assignment matches its metadata, so the
				// director serves the old files instead of signing anew.
				v.exec(t, "UPDATE director_devices SET targets = $1, snapshot = $2, timestamp = $3 WHERE device_id = $4",
					backup[0], backup[1], backup[2], dv.id)
				v.exec(t, "UPDATE device_assignments SET release_id = $1 WHERE device_id = $2", r1.ID, dv.id)
				err := refused(t, dv, &metadata.ErrBadVersionNumber{}, "director")
				if want := fmt.Sprintf("new timestamp version %d must be >= %d", before, seen); !strings.Contains(err.Error(), want) {
					t.Fatalf("refused with %v; want %q", err, want)
				}
			})
		})
	}
}

// directorMeta reads a device's stored director targets, snapshot and
// timestamp.
func (v *victim) directorMeta(t *testing.T, deviceID string) [3]string {
	t.Helper()
	var m [3]string
	err := v.db.QueryRow("SELECT targets, snapshot, timestamp FROM director_devices WHERE device_id = $1", deviceID).Scan(&m[0], &m[1], &m[2])
	if err != nil {
		t.Fatalf("director metadata of %s: %v", deviceID, err)
	}
	return m
}

// TestAttackFreeze serves a device a genuine image repository timestamp
// that has expired, in place of the fresh one, as an attacker freezing the
// device on what the repository said days ago would. The server's clock
// starts three days back, so that the timestamp is signed then, and is set
// right before the device enrolls.
func TestAttackFreeze(t *testing.T) {
	for _, d := range storetest.Dialects(t) {
		t.Run(string(d), func(t *testing.T) {
			fake := clock.NewFake(time.Now().Add(-3 * 24 * time.Hour))
			v := startVictim(t, d, fake)
			r1, _ := v.release(t, "gw", "1.0.0", firmware(1, imageSize))
			stale := v.meta(t, "timestamp.json")
			fake.Advance(time.Since(fake.Now()))
			v.release(t, "gw", "1.1.0", firmware(2, imageSize)) // signs a fresh timestamp
			if ts, _, _ := v.published(t); ts.Signed.IsExpired(time.Now()) {
				t.Fatalf("the server's own timestamp expired at %s", ts.Signed.Expires)
			}
			old, err := new(metadata.Metadata[metadata.TimestampType]).FromBytes(stale)
			if err != nil {
				t.Fatal(err)
			}
			if !old.Signed.IsExpired(time.Now()) {
				t.Fatalf("the replayed timestamp is still valid until %s", old.Signed.Expires)
			}

			dv := v.enroll(t, "FREEZE-1", "gw-hw", "0.9.0", 0)
			v.assign(t, dv, r1.ID) // signed in the frozen version
			v.putMeta(t, "timestamp.json", stale)
			err = refused(t, dv, &metadata.ErrExpiredMetadata{}, "image repository")
			if !strings.Contains(err.Error(), "timestamp.json is expired") {
				t.Fatalf("refused with %v; want the timestamp named as expired", err)
			}
		})
	}
}

// TestAttackMixAndMatch serves, under the name of the current snapshot or
// targets version, the genuine file of an earlier version: each is signed,
// but not the one the newer metadata pins by length and hash. The devices
// have seen the earlier versions, as devices in the field have.
func TestAttackMixAndMatch(t *testing.T) {
	for _, d := range storetest.Dialects(t) {
		t.Run(string(d), func(t *testing.T) {
			v := startVictim(t, d, nil)
			v.release(t, "gw", "1.0.0", firmware(1, imageSize))
			_, snap1, targets1 := v.published(t)
			oldFiles := map[string][]byte{
				"snapshot": v.meta(t, versionedName(snap1, "snapshot")),
				"targets":  v.meta(t, versionedName(targets1, "targets")),
			}
			devices := map[string]*victimDevice{}
			for _, role := range []string{"snapshot", "targets"} {
				devices[role] = v.enroll(t, "MIX-"+strings.ToUpper(role), "gw-hw", "0.9.0", 0)
				devices[role].refresh(t, "image")
			}
			r2, _ := v.release(t, "gw", "1.1.0", firmware(2, imageSize))
			_, snap2, targets2 := v.published(t)
			current := map[string]int64{"snapshot": snap2, "targets": targets2}
			if snap2 <= snap1 || targets2 <= targets1 {
				t.Fatalf("a release did not raise snapshot %d → %d and targets %d → %d", snap1, snap2, targets1, targets2)
			}
			for _, role := range []string{"snapshot", "targets"} {
				t.Run("older "+role+" under the current name", func(t *testing.T) {
					dv := devices[role]
					v.assign(t, dv, r2.ID)
					name := versionedName(current[role], role)
					cur := v.meta(t, name)
					t.Cleanup(func() { v.putMeta(t, name, cur) })
					v.putMeta(t, name, oldFiles[role])
					refused(t, dv, &metadata.ErrLengthOrHashMismatch{}, "image repository")
				})
			}
		})
	}
}

// offlineKeys are the keys of an image repository made by the key
// ceremony: root 1 of 1 and targets 2 of 2, all held offline (here, by the
// test). The server holds only the snapshot and timestamp keys.
type offlineKeys struct {
	root, targets1, targets2 *trust.Signer
}

// initOffline creates the organization's image repository with offline
// keys through the ceremony API and publishes its root.
func (v *victim) initOffline(t *testing.T) offlineKeys {
	t.Helper()
	var k offlineKeys
	var rootPEM, t1PEM, t2PEM string
	k.root, rootPEM = newOfflineKey(t, trust.RoleRoot)
	k.targets1, t1PEM = newOfflineKey(t, trust.RoleTargets)
	k.targets2, t2PEM = newOfflineKey(t, trust.RoleTargets)
	v.at(t).admin("POST", "/api/v1/orgs/acme/tuf", trust.InitRequest{RootKeys: []string{rootPEM}, RootThreshold: 1,
		TargetsKeys: []string{t1PEM, t2PEM}, TargetsThreshold: 2}, nil)
	if st := v.signStaged(t, trust.RoleRoot, k.root); !st.Published {
		t.Fatalf("root version 1 not published: %+v", st)
	}
	return k
}

func newOfflineKey(t *testing.T, role trust.Role) (*trust.Signer, string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := trust.NewSigner(role, priv)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return s, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// unsigned exports the staged version of role, as 'steward ctl tuf
// unsigned' does.
func (v *victim) unsigned(t *testing.T, role trust.Role) trust.UnsignedMetadata {
	t.Helper()
	var u trust.UnsignedMetadata
	v.at(t).admin("GET", "/api/v1/orgs/acme/tuf/"+string(role)+"/unsigned", nil, &u)
	return u
}

// signStaged signs the staged version of role with k and adds the
// signature through the ceremony API, as 'steward keys sign' and 'steward
// ctl tuf add-signature' do.
func (v *victim) signStaged(t *testing.T, role trust.Role, k *trust.Signer) trust.SigningState {
	t.Helper()
	u := v.unsigned(t, role)
	payload, err := cjson.EncodeCanonical(u.Signed)
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(payload); hex.EncodeToString(sum[:]) != u.SignedSHA256 {
		t.Fatalf("staged %s: canonical form hashes to %x, the server names %s", role, sum, u.SignedSHA256)
	}
	sig, err := k.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	var st trust.SigningState
	v.at(t).admin("POST", "/api/v1/orgs/acme/tuf/"+string(role)+"/signatures", trust.OfflineSignature{Role: u.Role, Version: u.Version,
		SignedSHA256: u.SignedSHA256, KeyID: sig.KeyID, Sig: hex.EncodeToString(sig.Signature)}, &st)
	return st
}

// publishTargets makes the image repository serve the staged targets
// version u signed by keys only, bypassing the ceremony: it writes the
// targets file into the database with a new snapshot and timestamp that
// pin it, signed with the online snapshot and timestamp keys the database
// holds.
func (v *victim) publishTargets(t *testing.T, u trust.UnsignedMetadata, keys ...*trust.Signer) {
	t.Helper()
	md, err := new(metadata.Metadata[metadata.TargetsType]).FromBytes([]byte(`{"signatures":[],"signed":` + string(u.Signed) + `}`))
	if err != nil {
		t.Fatal(err)
	}
	payload, err := cjson.EncodeCanonical(md.Signed)
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(payload); hex.EncodeToString(sum[:]) != u.SignedSHA256 {
		t.Fatalf("targets version %d does not survive parsing: canonical hash %x, staged %s", u.Version, sum, u.SignedSHA256)
	}
	doc := signMeta(t, md, keys...)
	v.putMeta(t, versionedName(u.Version, "targets"), doc)

	ts, snapV, _ := v.published(t)
	snap := metadata.Snapshot(expiresIn(7 * 24 * time.Hour))
	snap.Signed.Version = snapV + 1
	snap.Signed.Meta["targets.json"] = metaFileOf(u.Version, doc)
	snapDoc := signMeta(t, snap, v.onlineKey(t, trust.RoleSnapshot))
	v.putMeta(t, versionedName(snap.Signed.Version, "snapshot"), snapDoc)
	next := metadata.Timestamp(expiresIn(24 * time.Hour))
	next.Signed.Version = ts.Signed.Version + 1
	next.Signed.Meta["snapshot.json"] = metaFileOf(snap.Signed.Version, snapDoc)
	v.putMeta(t, "timestamp.json", signMeta(t, next, v.onlineKey(t, trust.RoleTimestamp)))
}

// TestAttackKeyCompromiseBelowThreshold runs an image repository whose
// targets need 2 of 2 offline keys, and an attacker who holds everything
// the server holds (its database: the director's keys, the online
// snapshot and timestamp keys, the admin API) and then one targets key.
// The attacker releases a malicious image and assigns it; the director
// names it, but the image repository does not sign it; the one targets
// key signs it, the ceremony waits for the second, and targets metadata
// written past the ceremony with that one signature is refused. Signed by
// both keys, the same forgery is accepted: the threshold alone refused it.
func TestAttackKeyCompromiseBelowThreshold(t *testing.T) {
	for _, d := range storetest.Dialects(t) {
		t.Run(string(d), func(t *testing.T) {
			v := startVictim(t, d, nil)
			keys := v.initOffline(t)
			v.release(t, "gw", "1.0.0", firmware(1, imageSize))
			v.signStaged(t, trust.RoleTargets, keys.targets1)
			if st := v.signStaged(t, trust.RoleTargets, keys.targets2); !st.Published {
				t.Fatalf("targets version 1 not published with both keys: %+v", st)
			}
			dv := v.enroll(t, "COMPROMISE-1", "gw-hw", "0.9.0", 0)

			evilImg := firmware(666, imageSize)
			evil, _ := v.release(t, "gw", "6.6.6", evilImg) // recorded, staged for signing
			v.assign(t, dv, evil.ID)

			// The director's keys alone.
			err := refused(t, dv, update.ErrNotInImageRepo, "")
			if !strings.Contains(err.Error(), "gw/6.6.6/fw.img") {
				t.Fatalf("refusal does not name the malicious target: %v", err)
			}

			// One targets key: the ceremony does not publish...
			if st := v.signStaged(t, trust.RoleTargets, keys.targets1); st.Published {
				t.Fatalf("one of two targets signatures published version %d", st.Version)
			}
			// ...so the attacker publishes through the database.
			u := v.unsigned(t, trust.RoleTargets)
			v.publishTargets(t, u, keys.targets1)
			err = refused(t, dv, &metadata.ErrUnsignedMetadata{}, "image repository")
			if !strings.Contains(err.Error(), "got 1, want 2") {
				t.Fatalf("refused with %v; want the missing targets signature named", err)
			}

			// Control: the threshold met, the device takes the same forgery.
			v.publishTargets(t, u, keys.targets1, keys.targets2)
			out, err := attemptUpdate(t, dv)
			if err != nil || out != update.OutcomeCommitted {
				t.Fatalf("the forgery signed by both targets keys was refused: %v %v", out, err)
			}
			st, _ := dv.slots.Status(context.Background())
			got, err := os.ReadFile(dv.slots.CurrentImage())
			if err != nil || st.Booted.Version != "6.6.6" || string(got) != string(evilImg) {
				t.Fatalf("with both keys the device runs %+v (%v), want the malicious image", st.Booted, err)
			}
		})
	}
}
