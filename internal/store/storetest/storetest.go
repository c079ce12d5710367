// Package storetest opens fresh, migrated databases for tests: a SQLite
// file in a temp dir, and a private schema on the PostgreSQL server named
// by STEWARD_TEST_PG (default: the local server, user postgres, database
// test), so parallel runs never collide.
//
// PostgreSQL is never skipped silently: an unreachable server fails the
// test. STEWARD_TEST_PG=skip skips it on a developer machine, and is
// refused when CI=true.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"

	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/store"
)

// DefaultPG is the test server when STEWARD_TEST_PG is unset.
const DefaultPG = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// Dialects lists the backends every contract test runs against.
func Dialects(t testing.TB) []store.Dialect {
	if os.Getenv("STEWARD_TEST_PG") == "skip" {
		if os.Getenv("CI") == "true" {
			t.Fatal("STEWARD_TEST_PG=skip is not allowed in CI: the PostgreSQL contract must run")
		}
		return []store.Dialect{store.SQLite}
	}
	return []store.Dialect{store.SQLite, store.Postgres}
}

// ForEach runs fn as a subtest per backend, each with a fresh database.
func ForEach(t *testing.T, c clock.Clock, fn func(t *testing.T, db *store.DB)) {
	for _, d := range Dialects(t) {
		t.Run(string(d), func(t *testing.T) {
			fn(t, New(t, d, c))
		})
	}
}

// New returns a fresh migrated database of dialect d, closed and dropped
// when the test ends.
func New(t testing.TB, d store.Dialect, c clock.Clock) *store.DB {
	t.Helper()
	dsn := DSN(t, d)
	ctx := context.Background()
	db, err := store.Open(ctx, dsn, store.Options{Clock: c})
	if err != nil {
		t.Fatalf("open %s test database: %v", d, err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatalf("migrate %s test database: %v", d, err)
	}
	return db
}

// DSN returns the address of a fresh, empty database of dialect d: a new
// SQLite file, or a new PostgreSQL schema (dropped at cleanup) selected
// through search_path.
func DSN(t testing.TB, d store.Dialect) string {
	t.Helper()
	if d == store.SQLite {
		return filepath.Join(t.TempDir(), "steward.db")
	}
	base := os.Getenv("STEWARD_TEST_PG")
	if base == "" {
		base = DefaultPG
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("PostgreSQL test server %s: %v", redact(base), err)
	}
	defer admin.Close()
	if err := admin.PingContext(ctx); err != nil {
		t.Fatalf("PostgreSQL test server %s is unreachable: %v\n"+
			"start it (pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start), point STEWARD_TEST_PG at another, "+
			"or set STEWARD_TEST_PG=skip outside CI", redact(base), err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "steward_test_" + hex.EncodeToString(b[:])
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create test schema: %v", err)
	}
	t.Cleanup(func() {
		a, err := sql.Open("pgx", base)
		if err != nil {
			return
		}
		defer a.Close()
		_, _ = a.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("STEWARD_TEST_PG is not a URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparseable DSN)"
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxx")
	}
	return strings.TrimSpace(u.String())
}
