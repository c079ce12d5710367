// Package id mints identifiers. IDs are UUIDv7: random enough to be
// unguessable across tenants, and time-ordered so that "after this ID" is a
// stable pagination cursor and inserts stay local in B-tree indexes.
package id

import "github.com/google/uuid"

// New returns a new UUIDv7 in canonical text form.
func New() string {
	return uuid.Must(uuid.NewV7()).String()
}

// Valid reports whether s is a canonical UUID, so malformed ids from a URL
// are answered "not found" without a database round trip.
func Valid(s string) bool {
	if len(s) != 36 {
		return false
	}
	_, err := uuid.Parse(s)
	return err == nil
}
