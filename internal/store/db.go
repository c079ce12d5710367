// Package store implements every domain's storage interface on SQLite
// (embedded default, modernc.org/sqlite, no cgo) and PostgreSQL (pgx), with
// one set of portable SQL statements. Domain packages own the interfaces;
// this package owns the SQL.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/steward-iot/steward/internal/audit"
	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/idempotency"
	"github.com/steward-iot/steward/internal/problem"
	"github.com/steward-iot/steward/internal/tenancy"
)

// Dialect names a supported database.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// Options tune a database handle.
type Options struct {
	Clock clock.Clock // stamps audit events; clock.Real when nil
	// MaxConns bounds the PostgreSQL pool (default 20) or the SQLite
	// reader pool (default 4). SQLite always has exactly one writer.
	MaxConns int
}

// DB is an open database. Reads and writes go through separate pools so
// that SQLite's single writer never blocks readers (WAL mode).
type DB struct {
	dialect Dialect
	writer  *sql.DB
	reader  *sql.DB
	clock   clock.Clock
}

// IsPostgresDSN reports whether dsn names a PostgreSQL server.
func IsPostgresDSN(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// Open opens a PostgreSQL DSN (postgres://…) or a SQLite file path.
func Open(ctx context.Context, dsn string, opts Options) (*DB, error) {
	if IsPostgresDSN(dsn) {
		return OpenPostgres(ctx, dsn, opts)
	}
	return OpenSQLite(ctx, strings.TrimPrefix(dsn, "sqlite:"), opts)
}

// OpenSQLite opens (creating if needed) the SQLite database at path.
func OpenSQLite(ctx context.Context, path string, opts Options) (*DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create database folder: %w", err)
	}
	// busy_timeout covers the rare writer/checkpoint contention;
	// _txlock=immediate takes the write lock at BEGIN so two writers
	// queue instead of failing with SQLITE_BUSY mid-transaction.
	q := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "foreign_keys(1)", "synchronous(NORMAL)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	writer, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	writer.SetMaxOpenConns(1)
	r := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "foreign_keys(1)", "query_only(1)"} {
		r.Add("_pragma", p)
	}
	reader, err := sql.Open("sqlite", "file:"+path+"?"+r.Encode())
	if err != nil {
		writer.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	reader.SetMaxOpenConns(max(opts.MaxConns, 4))
	db := &DB{dialect: SQLite, writer: writer, reader: reader, clock: opts.Clock}
	// Open the writer first so WAL mode is set before readers attach.
	if err := db.writer.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	return db.init(), nil
}

// OpenPostgres connects to a PostgreSQL server.
func OpenPostgres(ctx context.Context, dsn string, opts Options) (*DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse PostgreSQL DSN: %w", err)
	}
	pool := stdlib.OpenDB(*cfg)
	n := opts.MaxConns
	if n <= 0 {
		n = 20
	}
	pool.SetMaxOpenConns(n)
	pool.SetMaxIdleConns(n)
	pool.SetConnMaxIdleTime(5 * time.Minute)
	db := &DB{dialect: Postgres, writer: pool, reader: pool, clock: opts.Clock}
	if err := pool.PingContext(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to PostgreSQL at %s:%d: %w", cfg.Host, cfg.Port, err)
	}
	return db.init(), nil
}

func (db *DB) init() *DB {
	if db.clock == nil {
		db.clock = clock.Real
	}
	return db
}

// Dialect reports which database this is.
func (db *DB) Dialect() Dialect { return db.dialect }

// Pools returns the connection pools, named, for metrics.
func (db *DB) Pools() map[string]*sql.DB {
	if db.reader == db.writer {
		return map[string]*sql.DB{"main": db.writer}
	}
	return map[string]*sql.DB{"writer": db.writer, "reader": db.reader}
}

// Ping checks that the database answers (readiness).
func (db *DB) Ping(ctx context.Context) error {
	var one int
	return db.reader.QueryRowContext(ctx, "SELECT 1").Scan(&one)
}

// Close closes the pools.
func (db *DB) Close() error {
	err := db.writer.Close()
	if db.reader != db.writer {
		err = errors.Join(err, db.reader.Close())
	}
	return err
}

// Tx is one transaction. It implements every domain's Tx interface.
type Tx struct {
	tx *sql.Tx
	db *DB
}

var (
	_ tenancy.Tx     = (*Tx)(nil)
	_ audit.Tx       = (*Tx)(nil)
	_ idempotency.Tx = (*Tx)(nil)
)

// Read runs fn in a read-only transaction (a consistent snapshot).
func (db *DB) Read(ctx context.Context, fn func(*Tx) error) error {
	return db.run(ctx, db.reader, false, fn)
}

// Write runs fn in a transaction that commits only if fn returns nil.
// PostgreSQL serialization failures and deadlocks are retried.
func (db *DB) Write(ctx context.Context, fn func(*Tx) error) error {
	var err error
	for attempt := 0; attempt < 4; attempt++ {
		err = db.run(ctx, db.writer, true, fn)
		if !retryable(err) {
			return err
		}
		time.Sleep(time.Duration(attempt+1) * 10 * time.Millisecond)
	}
	return err
}

// deviceTrafficKey marks a context whose writes are device reports.
type deviceTrafficKey struct{}

// DeviceTraffic marks writes made under ctx as device reports, which
// devices send again if they are lost. Two things follow:
//
//   - On PostgreSQL they commit without waiting for the WAL flush
//     (synchronous_commit = off). A crash can lose the last fraction of a
//     second of them — whole transactions, never half of one. Enrollment
//     is idempotent and agents re-enroll when the server forgets them;
//     check-ins repeat. SQLite in WAL mode with synchronous=NORMAL already
//     behaves so.
//   - Their audit events go to audit_pending in the same transaction and
//     are chained by SealAudit shortly after, so thousands of devices do
//     not queue on their organization's chain head.
func DeviceTraffic(ctx context.Context) context.Context {
	return context.WithValue(ctx, deviceTrafficKey{}, true)
}

func isDeviceTraffic(ctx context.Context) bool { return ctx.Value(deviceTrafficKey{}) == true }

// Durable undoes DeviceTraffic for writes a device request causes that must
// not be lost, such as signing keys created on first use.
func Durable(ctx context.Context) context.Context {
	return context.WithValue(ctx, deviceTrafficKey{}, false)
}

func (db *DB) run(ctx context.Context, pool *sql.DB, write bool, fn func(*Tx) error) (err error) {
	opts := &sql.TxOptions{ReadOnly: !write && db.dialect == Postgres}
	stx, err := pool.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	if write && db.dialect == Postgres && isDeviceTraffic(ctx) {
		if _, err := stx.ExecContext(ctx, "SET LOCAL synchronous_commit = off"); err != nil {
			_ = stx.Rollback()
			return fmt.Errorf("relax durability: %w", err)
		}
	}
	tx := &Tx{tx: stx, db: db}
	defer func() {
		if p := recover(); p != nil {
			_ = stx.Rollback()
			panic(p)
		}
	}()
	if err := fn(tx); err != nil {
		_ = stx.Rollback()
		return err
	}
	if err := stx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// isUnique reports a unique or primary-key violation on either database.
func isUnique(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "23505"
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}

func (tx *Tx) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return tx.tx.ExecContext(ctx, q, args...)
}

// insert runs an INSERT, turning a uniqueness violation into a Conflict
// that names what already exists.
func (tx *Tx) insert(ctx context.Context, what string, q string, args ...any) error {
	_, err := tx.exec(ctx, q, args...)
	if isUnique(err) {
		return problem.Conflict("%s already exists", what)
	}
	if err != nil {
		return fmt.Errorf("insert %s: %w", what, err)
	}
	return nil
}

// updateOne runs an UPDATE that must touch exactly one row.
func (tx *Tx) updateOne(ctx context.Context, what string, q string, args ...any) error {
	res, err := tx.exec(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("update %s: %w", what, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n != 1 {
		return problem.NotFound("%s not found", what)
	}
	return nil
}

// Times are stored as microseconds since the epoch.
func us(t time.Time) int64 { return t.UnixMicro() }

func fromUS(v int64) time.Time { return time.UnixMicro(v).UTC() }

func nullUS(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixMicro()
}

func fromNullUS(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromUS(v.Int64)
	return &t
}

// domain adapts *DB to a domain's Store interface over that domain's Tx.
type domain[T any] struct{ db *DB }

func (d domain[T]) Read(ctx context.Context, fn func(T) error) error {
	return d.db.Read(ctx, func(tx *Tx) error { return fn(any(tx).(T)) })
}

func (d domain[T]) Write(ctx context.Context, fn func(T) error) error {
	return d.db.Write(ctx, func(tx *Tx) error { return fn(any(tx).(T)) })
}

// Tenancy returns the tenancy store.
func (db *DB) Tenancy() tenancy.Store { return domain[tenancy.Tx]{db} }

// Audit returns the audit store.
func (db *DB) Audit() audit.Store { return domain[audit.Tx]{db} }

// Idempotency returns the idempotency-key store.
func (db *DB) Idempotency() idempotency.Store { return domain[idempotency.Tx]{db} }
