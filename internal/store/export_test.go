package store

import "context"

// ExecForTest runs raw SQL, for tests that corrupt state on purpose.
func (tx *Tx) ExecForTest(ctx context.Context, q string) error {
	_, err := tx.exec(ctx, q)
	return err
}

// QueryStringForTest reads one string value with raw SQL.
func (tx *Tx) QueryStringForTest(ctx context.Context, q string) (string, error) {
	var s string
	err := tx.tx.QueryRowContext(ctx, q).Scan(&s)
	return s, err
}
