package audit

import (
	"context"
	"fmt"
)

// Break describes the first broken link found in a chain.
type Break struct {
	OrgID   string
	Seq     int64
	EventID string
	Reason  string
}

func (b Break) String() string {
	org := b.OrgID
	if org == "" {
		org = "(instance)"
	}
	return fmt.Sprintf("org %s, event #%d (%s): %s", org, b.Seq, b.EventID, b.Reason)
}

// Result summarizes a verification run.
type Result struct {
	Chains int
	Events int64
	// Breaks holds the first break of each broken chain, empty when intact.
	Breaks []Break
	// Pending counts recorded events not yet chained (device traffic; a
	// running server seals them within a second).
	Pending int64
}

// Verify recomputes every chain in s and reports the first broken link of
// each: an edited row (hash mismatch), a removed or reordered row (sequence
// or previous-hash mismatch) and a truncated tail (head beyond last event).
func Verify(ctx context.Context, s Store) (Result, error) {
	var res Result
	err := s.Read(ctx, func(tx Tx) error {
		heads, err := tx.AuditHeads(ctx)
		if err != nil {
			return err
		}
		if res.Pending, err = tx.CountPendingAudit(ctx, ""); err != nil {
			return err
		}
		for _, h := range heads {
			res.Chains++
			if b, ok, err := verifyChain(ctx, tx, h, &res.Events); err != nil {
				return err
			} else if !ok {
				res.Breaks = append(res.Breaks, b)
			}
		}
		return nil
	})
	return res, err
}

// errStop ends a scan early once a break is found.
var errStop = fmt.Errorf("stop")

func verifyChain(ctx context.Context, tx Tx, head Head, count *int64) (Break, bool, error) {
	prev := Head{OrgID: head.OrgID}
	var brk *Break
	err := tx.ScanAudit(ctx, head.OrgID, func(e Event) error {
		*count++
		fail := func(reason string) error {
			brk = &Break{OrgID: head.OrgID, Seq: e.Seq, EventID: e.ID, Reason: reason}
			return errStop
		}
		switch {
		case e.Seq != prev.Seq+1:
			return fail(fmt.Sprintf("sequence jumps from %d to %d: events were removed", prev.Seq, e.Seq))
		case e.PrevHash != prev.Hash:
			return fail("previous-hash does not match the event before it: the chain was re-linked")
		case ComputeHash(e) != e.Hash:
			return fail("content does not match its hash: the event was altered")
		}
		prev = Head{OrgID: head.OrgID, Seq: e.Seq, Hash: e.Hash}
		return nil
	})
	if err != nil && err != errStop {
		return Break{}, false, err
	}
	if brk != nil {
		return *brk, false, nil
	}
	if prev.Seq == head.Seq && prev.Hash != head.Hash {
		return Break{OrgID: head.OrgID, Seq: prev.Seq,
			Reason: "last event's hash differs from the chain head: the tail was rewritten"}, false, nil
	}
	if prev.Seq != head.Seq {
		return Break{OrgID: head.OrgID, Seq: prev.Seq + 1,
			Reason: fmt.Sprintf("chain ends at #%d but its head records #%d: events were removed from the end", prev.Seq, head.Seq)}, false, nil
	}
	return Break{}, true, nil
}
