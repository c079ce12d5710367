package store

import "context"

// ExecForTest runs raw SQL, for tests that corrupt state on purpose.
func (tx *Tx) ExecForTest(ctx context.Context, q string) error {
	_, err := tx.exec(ctx, q)
	return err
}
