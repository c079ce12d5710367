package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/id"
	"github.com/steward-iot/steward/internal/identity"
	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/problem"
	"github.com/steward-iot/steward/internal/store"
	"github.com/steward-iot/steward/internal/store/storetest"
	"github.com/steward-iot/steward/internal/tenancy"
	"github.com/steward-iot/steward/internal/trust"
)

func TestContractDevices(t *testing.T) {
	tests := []struct {
		name string
		fn   func(t *testing.T, db *store.DB)
	}{
		{"Products", testProducts},
		{"Devices", testDevices},
		{"DeviceSoftware", testDeviceSoftware},
		{"Groups", testGroups},
		{"EnrollmentTokens", testEnrollmentTokens},
		{"Preauthorizations", testPreauth},
		{"ServerSecret", testServerSecret},
		{"TUF", testTUF},
	}
	for _, d := range storetest.Dialects(t) {
		t.Run(string(d), func(t *testing.T) {
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.fn(t, storetest.New(t, d, clock.NewFake(t0)))
				})
			}
		})
	}
}

func newProduct(t *testing.T, tx *store.Tx, org tenancy.Org, slug string) inventory.Product {
	t.Helper()
	eos := time.Date(2031, 12, 31, 0, 0, 0, 0, time.UTC)
	p := inventory.Product{ID: id.New(), OrgID: org.ID, Slug: slug, Name: "P " + slug, HardwareID: "hw-" + slug,
		Capability: inventory.CapabilityAB, BatteryPowered: true, LinkClass: "nb-iot", EndOfSupport: &eos, CreatedAt: clock.Norm(t0)}
	if err := tx.InsertProduct(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	return p
}

func newDevice(t *testing.T, tx *store.Tx, org tenancy.Org, p inventory.Product, serial, status string) inventory.Device {
	t.Helper()
	d := inventory.Device{ID: id.New(), OrgID: org.ID, ProductID: p.ID, Product: p.Slug, Serial: serial, KeyID: "key-" + serial,
		Algorithm: "ed25519", PublicKeyPEM: "pem", Status: status, EnrolledVia: "test", CreatedAt: clock.Norm(t0),
		StatusChangedAt: clock.Norm(t0), Tags: map[string]string{}}
	if err := tx.InsertDevice(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	return d
}

func read(t *testing.T, db *store.DB, fn func(tx *store.Tx) error) {
	t.Helper()
	if err := db.Read(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

func testProducts(t *testing.T, db *store.DB) {
	ctx := context.Background()
	var a, b tenancy.Org
	var p inventory.Product
	write(t, db, func(tx *store.Tx) error {
		a, b = newOrg(t, tx, "a"), newOrg(t, tx, "b")
		p = newProduct(t, tx, a, "gw")
		newProduct(t, tx, b, "gw") // same slug and hardware id in another org
		return nil
	})
	err := db.Write(ctx, func(tx *store.Tx) error {
		return tx.InsertProduct(ctx, inventory.Product{ID: id.New(), OrgID: a.ID, Slug: "gw2", Name: "x", HardwareID: "hw-gw",
			Capability: "ab", LinkClass: "wifi", CreatedAt: t0})
	})
	wantKind(t, err, problem.KindConflict, "duplicate hardware id in an org")
	read(t, db, func(tx *store.Tx) error {
		for _, get := range []func() (inventory.Product, error){
			func() (inventory.Product, error) { return tx.ProductByID(ctx, a.ID, p.ID) },
			func() (inventory.Product, error) { return tx.ProductBySlug(ctx, a.ID, "gw") },
			func() (inventory.Product, error) { return tx.ProductByHardwareID(ctx, a.ID, "hw-gw") },
		} {
			got, err := get()
			if err != nil || got.ID != p.ID || !got.EndOfSupport.Equal(*p.EndOfSupport) || !got.BatteryPowered || got.LinkClass != "nb-iot" {
				t.Fatalf("product read back: %+v %v", got, err)
			}
		}
		_, err := tx.ProductByID(ctx, b.ID, p.ID)
		wantKind(t, err, problem.KindNotFound, "product through another org")
		ps, err := tx.ListProducts(ctx, a.ID, "", 10)
		if err != nil || len(ps) != 1 {
			t.Fatalf("ListProducts: %v %v", ps, err)
		}
		return nil
	})
}

func testDevices(t *testing.T, db *store.DB) {
	ctx := context.Background()
	var a, b tenancy.Org
	var d1, d2 inventory.Device
	write(t, db, func(tx *store.Tx) error {
		a, b = newOrg(t, tx, "a"), newOrg(t, tx, "b")
		p := newProduct(t, tx, a, "gw")
		d1 = newDevice(t, tx, a, p, "S1", "active")
		d2 = newDevice(t, tx, a, p, "S2", "pending")
		return nil
	})
	err := db.Write(ctx, func(tx *store.Tx) error {
		p, _ := tx.ProductByID(ctx, a.ID, d1.ProductID)
		newD := d1
		newD.ID, newD.KeyID = id.New(), "other-key"
		_ = p
		return tx.InsertDevice(ctx, newD)
	})
	wantKind(t, err, problem.KindConflict, "duplicate serial")
	read(t, db, func(tx *store.Tx) error {
		got, err := tx.DeviceByID(ctx, a.ID, d1.ID)
		if err != nil || got.Serial != "S1" || got.Product != "gw" || got.Status != "active" || !got.CreatedAt.Equal(d1.CreatedAt) {
			t.Fatalf("DeviceByID: %+v %v", got, err)
		}
		_, err = tx.DeviceByID(ctx, b.ID, d1.ID)
		wantKind(t, err, problem.KindNotFound, "device through another org")
		if got, err := tx.DeviceByKeyID(ctx, "key-S2"); err != nil || got.ID != d2.ID {
			t.Fatalf("DeviceByKeyID: %v", err)
		}
		if got, err := tx.DeviceForAuth(ctx, d2.ID); err != nil || got.Status != "pending" {
			t.Fatalf("DeviceForAuth: %v", err)
		}
		if got, err := tx.DeviceBySerial(ctx, a.ID, "S2"); err != nil || got.ID != d2.ID {
			t.Fatalf("DeviceBySerial: %v", err)
		}
		if n, err := tx.CountDevices(ctx, "active"); err != nil || n != 1 {
			t.Fatalf("CountDevices: %d %v", n, err)
		}
		ds, err := tx.ListDevices(ctx, inventory.DeviceFilter{OrgID: a.ID, Limit: 10, Cond: func(next func(any) string) (string, error) {
			return "d.status = " + next("pending"), nil
		}})
		if err != nil || len(ds) != 1 || ds[0].ID != d2.ID {
			t.Fatalf("ListDevices(status=pending): %+v %v", ds, err)
		}
		if ds, _ := tx.ListDevices(ctx, inventory.DeviceFilter{OrgID: b.ID, Limit: 10}); len(ds) != 0 {
			t.Fatalf("org b sees %d devices", len(ds))
		}
		return nil
	})
	at := clock.Norm(t0.Add(time.Minute))
	write(t, db, func(tx *store.Tx) error {
		if err := tx.SetDeviceStatus(ctx, a.ID, d2.ID, "rejected", at); err != nil {
			return err
		}
		wantKind(t, tx.SetDeviceStatus(ctx, b.ID, d2.ID, "active", at), problem.KindNotFound, "status through another org")
		for i, want := range []bool{true, false, true} {
			ts := at.Add(time.Duration([]int{0, 0, 1}[i]) * time.Microsecond)
			ok, err := tx.AdvanceDeviceAuth(ctx, d1.ID, ts)
			if err != nil || ok != want {
				return fmt.Errorf("AdvanceDeviceAuth #%d = %v, %v; want %v", i, ok, err, want)
			}
		}
		if err := tx.SetDeviceTags(ctx, d1.ID, map[string]string{"region": "eu", "site": "x"}); err != nil {
			return err
		}
		return tx.SetDeviceTags(ctx, d1.ID, map[string]string{"region": "us"})
	})
	read(t, db, func(tx *store.Tx) error {
		got, _ := tx.DeviceByID(ctx, a.ID, d2.ID)
		if got.Status != "rejected" || !got.StatusChangedAt.Equal(at) {
			t.Fatalf("after SetDeviceStatus: %+v", got)
		}
		got, _ = tx.DeviceByID(ctx, a.ID, d1.ID)
		if len(got.Tags) != 1 || got.Tags["region"] != "us" {
			t.Fatalf("tags replaced: %v", got.Tags)
		}
		ds, _ := tx.ListDevices(ctx, inventory.DeviceFilter{OrgID: a.ID, Limit: 10})
		if len(ds) != 2 || ds[0].Tags == nil {
			t.Fatalf("list with tags: %+v", ds)
		}
		return nil
	})
}

func testDeviceSoftware(t *testing.T, db *store.DB) {
	ctx := context.Background()
	var a tenancy.Org
	var p inventory.Product
	var d inventory.Device
	write(t, db, func(tx *store.Tx) error {
		a = newOrg(t, tx, "a")
		p = newProduct(t, tx, a, "gw")
		d = newDevice(t, tx, a, p, "S1", "active")
		return nil
	})
	for i, v := range []string{"1.0.0", "1.0.0", "1.1.0"} {
		write(t, db, func(tx *store.Tx) error {
			return tx.RecordSoftware(ctx, inventory.Software{DeviceID: d.ID, Version: v, VersionKey: "k" + v, Hash: fmt.Sprint("h", i),
				Components: []inventory.Component{{Purl: "pkg:generic/a@" + v, Version: v}, {Purl: "pkg:generic/b@1", Version: "1"}},
				At:         clock.Norm(t0.Add(time.Duration(i) * time.Hour))})
		})
	}
	battery := 42
	seenAt := clock.Norm(t0.Add(3 * time.Hour))
	write(t, db, func(tx *store.Tx) error {
		if err := tx.TouchDevices(ctx, []inventory.Seen{{DeviceID: d.ID, At: seenAt,
			State: inventory.State{BatteryPercent: &battery, Link: "nb-iot", Metered: true, FreeStorage: 99, MaintenanceWindow: "02:00-04:00 UTC"}}}); err != nil {
			return err
		}
		// An older batch must not move last-seen backwards.
		return tx.TouchDevices(ctx, []inventory.Seen{{DeviceID: d.ID, At: seenAt.Add(-time.Hour)}})
	})
	read(t, db, func(tx *store.Tx) error {
		got, err := tx.DeviceByID(ctx, a.ID, d.ID)
		if err != nil || got.InstalledVersion != "1.1.0" || got.SoftwareHash != "h2" || got.LastSeenAt == nil || !got.LastSeenAt.Equal(seenAt) ||
			*got.State.BatteryPercent != 42 || !got.State.Metered || got.State.Link != "nb-iot" || got.State.MaintenanceWindow != "02:00-04:00 UTC" {
			t.Fatalf("device after software and touch: %+v %v", got, err)
		}
		cs, _ := tx.DeviceComponents(ctx, d.ID)
		if len(cs) != 2 || cs[0].Purl != "pkg:generic/a@1.1.0" {
			t.Fatalf("components: %+v", cs)
		}
		h, _ := tx.VersionHistory(ctx, d.ID, 10)
		if len(h) != 2 || h[0].Version != "1.1.0" || h[1].Version != "1.0.0" {
			t.Fatalf("version history (a repeated version is not a new entry): %+v", h)
		}
		dist, _ := tx.VersionDistribution(ctx, a.ID, p.ID)
		if len(dist) != 1 || dist[0].Version != "1.1.0" || dist[0].Devices != 1 {
			t.Fatalf("distribution: %+v", dist)
		}
		if n, _ := tx.CountNotSeenSince(ctx, a.ID, p.ID, seenAt); n != 0 {
			t.Fatalf("not seen since last seen: %d", n)
		}
		if n, _ := tx.CountNotSeenSince(ctx, a.ID, p.ID, seenAt.Add(time.Second)); n != 1 {
			t.Fatalf("not seen since after last seen: %d", n)
		}
		return nil
	})
}

func testGroups(t *testing.T, db *store.DB) {
	ctx := context.Background()
	var a, b tenancy.Org
	var d inventory.Device
	g := inventory.Group{ID: id.New(), Name: "canary", CreatedAt: clock.Norm(t0)}
	write(t, db, func(tx *store.Tx) error {
		a, b = newOrg(t, tx, "a"), newOrg(t, tx, "b")
		d = newDevice(t, tx, a, newProduct(t, tx, a, "gw"), "S1", "active")
		g.OrgID = a.ID
		if err := tx.InsertGroup(ctx, g); err != nil {
			return err
		}
		if err := tx.AddGroupMembers(ctx, g.ID, []string{d.ID, d.ID}); err != nil {
			return err
		}
		return nil
	})
	err := db.Write(ctx, func(tx *store.Tx) error {
		return tx.InsertGroup(ctx, inventory.Group{ID: id.New(), OrgID: a.ID, Name: "canary", CreatedAt: t0})
	})
	wantKind(t, err, problem.KindConflict, "duplicate group name")
	read(t, db, func(tx *store.Tx) error {
		if got, err := tx.GroupByName(ctx, a.ID, "canary"); err != nil || got != g {
			t.Fatalf("GroupByName: %+v %v", got, err)
		}
		_, err := tx.GroupByID(ctx, b.ID, g.ID)
		wantKind(t, err, problem.KindNotFound, "group through another org")
		gs, _ := tx.ListGroups(ctx, a.ID, "", 10)
		ds, _ := tx.ListDevices(ctx, inventory.DeviceFilter{OrgID: a.ID, Limit: 10, Cond: func(next func(any) string) (string, error) {
			return "d.id IN (SELECT device_id FROM device_group_members WHERE group_id = " + next(g.ID) + ")", nil
		}})
		if len(gs) != 1 || len(ds) != 1 {
			t.Fatalf("groups %d, members %d", len(gs), len(ds))
		}
		return nil
	})
}

func testEnrollmentTokens(t *testing.T, db *store.DB) {
	ctx := context.Background()
	var a, b tenancy.Org
	tok := identity.EnrollmentToken{ID: id.New(), Name: "factory", MaxUses: 2, CreatedAt: clock.Norm(t0), CreatedBy: "x",
		ExpiresAt: clock.Norm(t0.Add(time.Hour))}
	write(t, db, func(tx *store.Tx) error {
		a, b = newOrg(t, tx, "a"), newOrg(t, tx, "b")
		tok.OrgID = a.ID
		return tx.InsertEnrollmentToken(ctx, tok, "h1")
	})
	write(t, db, func(tx *store.Tx) error {
		for i, want := range []bool{true, true, false} {
			ok, err := tx.UseEnrollmentToken(ctx, tok.ID)
			if err != nil || ok != want {
				return fmt.Errorf("use #%d = %v %v", i, ok, err)
			}
		}
		return nil
	})
	read(t, db, func(tx *store.Tx) error {
		got, err := tx.EnrollmentTokenByHash(ctx, "h1")
		if err != nil || got.Uses != 2 || !got.ExpiresAt.Equal(tok.ExpiresAt) || got.ProductID != "" {
			t.Fatalf("by hash: %+v %v", got, err)
		}
		_, err = tx.EnrollmentTokenByID(ctx, b.ID, tok.ID)
		wantKind(t, err, problem.KindNotFound, "token through another org")
		ts, _ := tx.ListEnrollmentTokens(ctx, a.ID, "", 10)
		if len(ts) != 1 {
			t.Fatalf("list: %d", len(ts))
		}
		return nil
	})
	write(t, db, func(tx *store.Tx) error { return tx.RevokeEnrollmentToken(ctx, a.ID, tok.ID, clock.Norm(t0)) })
	err := db.Write(ctx, func(tx *store.Tx) error { return tx.RevokeEnrollmentToken(ctx, a.ID, tok.ID, t0) })
	wantKind(t, err, problem.KindNotFound, "revoking twice")
}

func testPreauth(t *testing.T, db *store.DB) {
	ctx := context.Background()
	var a, b tenancy.Org
	write(t, db, func(tx *store.Tx) error {
		a, b = newOrg(t, tx, "a"), newOrg(t, tx, "b")
		p := newProduct(t, tx, a, "gw")
		if err := tx.InsertPreauthorization(ctx, identity.Preauthorization{OrgID: a.ID, Kind: "serial", Value: "S1", CreatedAt: t0}); err != nil {
			return err
		}
		// Again, now tied to a product: an upsert, not a conflict.
		return tx.InsertPreauthorization(ctx, identity.Preauthorization{OrgID: a.ID, Kind: "serial", Value: "S1", ProductID: p.ID, CreatedAt: t0})
	})
	read(t, db, func(tx *store.Tx) error {
		if got, err := tx.Preauthorized(ctx, a.ID, "serial", "S1"); err != nil || got.ProductID == "" {
			t.Fatalf("Preauthorized: %+v %v", got, err)
		}
		_, err := tx.Preauthorized(ctx, b.ID, "serial", "S1")
		wantKind(t, err, problem.KindNotFound, "pre-authorization of another org")
		_, err = tx.Preauthorized(ctx, a.ID, "key", "S1")
		wantKind(t, err, problem.KindNotFound, "other kind")
		return nil
	})
}

func testServerSecret(t *testing.T, db *store.DB) {
	ctx := context.Background()
	var first, second string
	write(t, db, func(tx *store.Tx) error {
		var err error
		first, err = tx.ServerSecret(ctx, "k", "one", t0)
		return err
	})
	write(t, db, func(tx *store.Tx) error {
		var err error
		second, err = tx.ServerSecret(ctx, "k", "two", t0)
		return err
	})
	if first != "one" || second != "one" {
		t.Fatalf("ServerSecret kept %q then %q; want the first value forever", first, second)
	}
}

func testTUF(t *testing.T, db *store.DB) {
	ctx := context.Background()
	var a, b tenancy.Org
	write(t, db, func(tx *store.Tx) error {
		a, b = newOrg(t, tx, "a"), newOrg(t, tx, "b")
		return nil
	})
	ma, mb := db.TUFMeta(a.ID), db.TUFMeta(b.ID)
	if err := ma.Put(ctx, "timestamp.json", []byte(`{"v":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := ma.Put(ctx, "timestamp.json", []byte(`{"v":2}`)); err != nil {
		t.Fatal(err)
	}
	if got, err := ma.Get(ctx, "timestamp.json"); err != nil || string(got) != `{"v":2}` {
		t.Fatalf("Get after overwrite: %s %v", got, err)
	}
	if _, err := mb.Get(ctx, "timestamp.json"); !errors.Is(err, trust.ErrNotFound) {
		t.Fatalf("another org's metadata: %v, want ErrNotFound", err)
	}
	der := []byte{0x30, 0x00, 0xff, 0x01} // binary, not text
	if err := db.SaveTUFKeys(ctx, a.ID, []trust.StoredKey{{Role: trust.RoleRoot, KeyID: "k1", PKCS8: der}}); err != nil {
		t.Fatal(err)
	}
	if err := db.SaveTUFKeys(ctx, a.ID, []trust.StoredKey{{Role: trust.RoleRoot, KeyID: "k1", PKCS8: der}}); !problem.Is(err, problem.KindConflict) {
		t.Fatalf("duplicate key id: %v", err)
	}
	keys, err := db.TUFKeys(ctx, a.ID)
	if err != nil || len(keys) != 1 || !bytes.Equal(keys[0].PKCS8, der) || keys[0].Role != trust.RoleRoot {
		t.Fatalf("TUFKeys: %+v %v", keys, err)
	}
	if keys, _ := db.TUFKeys(ctx, b.ID); len(keys) != 0 {
		t.Fatal("org b sees org a's keys")
	}
	if orgs, err := db.TUFOrgs(ctx); err != nil || len(orgs) != 1 || orgs[0] != a.ID {
		t.Fatalf("TUFOrgs: %v %v", orgs, err)
	}
}
