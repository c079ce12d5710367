// Package paging holds the keyset-pagination rules every list follows:
// fetch one row more than the page, and if it came, the last key of the
// page is the cursor of the next.
package paging

import "context"

// MaxLimit bounds one page of any list.
const MaxLimit = 500

// Limit maps a requested page size to the one served.
func Limit(n int) int {
	if n <= 0 || n > MaxLimit {
		return MaxLimit
	}
	return n
}

// Trim cuts items fetched with limit+1 rows to one page and returns the
// key after which the next page starts ("" on the last page). The slice is
// never nil, so it encodes as [] rather than null.
func Trim[T any](items []T, limit int, key func(T) string) ([]T, string) {
	next := ""
	if len(items) > limit {
		items, next = items[:limit], key(items[limit-1])
	}
	if items == nil {
		items = []T{}
	}
	return items, next
}

// List fetches one page in a read transaction: read runs fn in the
// transaction, fetch asks for limit+1 rows, key names a row's cursor.
func List[T, Tx any](ctx context.Context, read func(context.Context, func(Tx) error) error, limit int,
	fetch func(tx Tx, limit int) ([]T, error), key func(T) string) ([]T, string, error) {
	limit = Limit(limit)
	var items []T
	err := read(ctx, func(tx Tx) error {
		var err error
		items, err = fetch(tx, limit+1)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	items, next := Trim(items, limit, key)
	return items, next, nil
}
