package audit

import (
	"context"
	"log/slog"
	"time"
)

// sealBatch bounds one sealing transaction.
const sealBatch = 1000

// sealOrg chains every pending event of one organization. The common
// case, nothing pending, costs one read and no write.
func sealOrg(ctx context.Context, s Store, orgID string) error {
	var pending int64
	if err := s.Read(ctx, func(tx Tx) error {
		var err error
		pending, err = tx.CountPendingAudit(ctx, orgID)
		return err
	}); err != nil || pending == 0 {
		return err
	}
	for {
		var n int
		err := s.Write(ctx, func(tx Tx) error {
			var err error
			n, err = tx.SealAudit(ctx, orgID, sealBatch)
			return err
		})
		if err != nil || n < sealBatch {
			return err
		}
	}
}

// SealPending chains every pending event of every organization and
// reports how many organizations had some.
func SealPending(ctx context.Context, s Store) (int, error) {
	var orgs []string
	err := s.Read(ctx, func(tx Tx) error {
		var err error
		orgs, err = tx.PendingAuditOrgs(ctx, 10_000)
		return err
	})
	if err != nil {
		return 0, err
	}
	for _, org := range orgs {
		if err := sealOrg(ctx, s, org); err != nil {
			return 0, err
		}
	}
	return len(orgs), nil
}

// RunSealer seals pending events every interval until ctx ends, then once
// more, so a clean shutdown leaves nothing unchained.
func RunSealer(ctx context.Context, s Store, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if _, err := SealPending(context.WithoutCancel(ctx), s); err != nil {
				log.Error("final audit sealing failed; pending events stay recorded and are sealed at next start", "err", err)
			}
			return
		case <-t.C:
			if _, err := SealPending(ctx, s); err != nil && ctx.Err() == nil {
				log.Warn("audit sealing failed; will retry", "err", err)
			}
		}
	}
}
