package store_test

import (
	"context"
	"slices"
	"testing"

	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/store"
	"github.com/steward-iot/steward/internal/store/storetest"
)

func TestContractDeviceExposure(t *testing.T) {
	for _, d := range storetest.Dialects(t) {
		t.Run(string(d), func(t *testing.T) {
			db := storetest.New(t, d, clock.NewFake(t0))
			ctx := context.Background()
			write(t, db, func(tx *store.Tx) error {
				a, b := newOrg(t, tx, "a"), newOrg(t, tx, "b")
				dev := newDevice(t, tx, a, newProduct(t, tx, a, "gw"), "S1", "active")
				if ids, known, err := tx.DeviceExposure(ctx, a.ID, dev.ID); err != nil || known || len(ids) != 0 {
					t.Fatalf("before: %v %v %v", ids, known, err)
				}
				for _, set := range [][]string{{"CVE-1", "GHSA-2"}, {}} {
					if err := tx.PutDeviceExposure(ctx, a.ID, dev.ID, set, t0); err != nil {
						return err
					}
					ids, known, err := tx.DeviceExposure(ctx, a.ID, dev.ID)
					if err != nil || !known || !slices.Equal(ids, set) {
						t.Fatalf("after put %v: %v %v %v", set, ids, known, err)
					}
				}
				if _, known, err := tx.DeviceExposure(ctx, b.ID, dev.ID); err != nil || known {
					t.Fatalf("another org reads it: %v %v", known, err)
				}
				return nil
			})
		})
	}
}
