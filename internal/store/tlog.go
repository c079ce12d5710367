package store

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	sumtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/steward-iot/steward/internal/problem"
	"github.com/steward-iot/steward/internal/tlog"
)

// TLog returns the store of an organization's transparency log.
func (db *DB) TLog(orgID string) TLogStore { return TLogStore{db: db, org: orgID} }

// TLogStore keeps one organization's transparency log in the tlog_* tables.
type TLogStore struct {
	db  *DB
	org string
}

var (
	_ tlog.Store  = TLogStore{}
	_ tlog.Finder = TLogStore{}
)

// hashesPerQuery bounds the IN list of one ReadHashes query; proofs need
// at most a few dozen hashes, so this only guards against odd callers.
const hashesPerQuery = 500

// Append implements tlog.Store: the leaf, its index key and its stored
// hashes go in with the new size in one transaction, or nothing does.
func (s TLogStore) Append(ctx context.Context, n int64, leaf []byte, hashes []tlog.Hash) error {
	if n < 0 {
		return fmt.Errorf("tlog store: negative entry index %d", n)
	}
	if want := sumtlog.StoredHashCount(n+1) - sumtlog.StoredHashCount(n); int64(len(hashes)) != want {
		return fmt.Errorf("tlog store: entry %d comes with %d stored hashes, want %d", n, len(hashes), want)
	}
	// The index needs the entry's key, and a leaf that is no entry has no
	// business in the log.
	e, err := tlog.ParseEntry(leaf)
	if err != nil {
		return fmt.Errorf("tlog store: entry %d: %w", n, err)
	}
	first := sumtlog.StoredHashIndex(0, n)
	return s.db.Write(ctx, func(tx *Tx) error {
		// The upsert creates the head on the first append and, on
		// PostgreSQL, holds its row lock until commit: a concurrent
		// appender (another replica) waits here, then reads the size its
		// predecessor wrote and sees the conflict. SQLite has one writer.
		var size int64
		err := tx.tx.QueryRowContext(ctx, `INSERT INTO tlog_heads (org_id, size) VALUES ($1, 0)
			ON CONFLICT (org_id) DO UPDATE SET size = tlog_heads.size RETURNING size`, s.org).Scan(&size)
		if err != nil {
			return fmt.Errorf("tlog store: lock log head: %w", err)
		}
		if size != n {
			return fmt.Errorf("%w: entry %d offered to a log of %d entries", tlog.ErrConflict, n, size)
		}
		_, err = tx.exec(ctx, "INSERT INTO tlog_leaves (org_id, idx, leaf, entry_key) VALUES ($1, $2, $3, $4)",
			s.org, n, string(leaf), e.Key())
		if isUnique(err) {
			// Only a head that lost track of its leaves gets here.
			return fmt.Errorf("%w: entry %d is already stored", tlog.ErrConflict, n)
		} else if err != nil {
			return fmt.Errorf("tlog store: insert entry %d: %w", n, err)
		}
		for i, h := range hashes {
			if _, err := tx.exec(ctx, "INSERT INTO tlog_hashes (org_id, idx, hash) VALUES ($1, $2, $3)",
				s.org, first+int64(i), hex.EncodeToString(h[:])); err != nil {
				return fmt.Errorf("tlog store: insert stored hash %d: %w", first+int64(i), err)
			}
		}
		if _, err := tx.exec(ctx, "UPDATE tlog_heads SET size = $2 WHERE org_id = $1", s.org, n+1); err != nil {
			return fmt.Errorf("tlog store: update log size: %w", err)
		}
		return nil
	})
}

// Size implements tlog.Store.
func (s TLogStore) Size(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.reader.QueryRowContext(ctx, "SELECT size FROM tlog_heads WHERE org_id = $1", s.org).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return n, err
}

// Leaf implements tlog.Store.
func (s TLogStore) Leaf(ctx context.Context, i int64) ([]byte, error) {
	var leaf string
	err := s.db.reader.QueryRowContext(ctx, "SELECT leaf FROM tlog_leaves WHERE org_id = $1 AND idx = $2", s.org, i).Scan(&leaf)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("tlog store: no entry %d", i)
	}
	return []byte(leaf), err
}

// ReadHashes implements tlog.Store.
func (s TLogStore) ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error) {
	found := make(map[int64]tlog.Hash, len(indexes))
	for start := 0; start < len(indexes); start += hashesPerQuery {
		chunk := indexes[start:min(start+hashesPerQuery, len(indexes))]
		args := []any{s.org}
		marks := make([]string, len(chunk))
		for i, x := range chunk {
			args = append(args, x)
			marks[i] = "$" + strconv.Itoa(i+2)
		}
		if err := s.readHashes(ctx, "SELECT idx, hash FROM tlog_hashes WHERE org_id = $1 AND idx IN ("+strings.Join(marks, ", ")+")", args, found); err != nil {
			return nil, err
		}
	}
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		h, ok := found[x]
		if !ok {
			return nil, fmt.Errorf("tlog store: no stored hash %d", x)
		}
		out[i] = h
	}
	return out, nil
}

func (s TLogStore) readHashes(ctx context.Context, q string, args []any, into map[int64]tlog.Hash) error {
	rows, err := s.db.reader.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("tlog store: read stored hashes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var x int64
		var hx string
		if err := rows.Scan(&x, &hx); err != nil {
			return fmt.Errorf("tlog store: read stored hashes: %w", err)
		}
		b, err := hex.DecodeString(hx)
		if err != nil || len(b) != tlog.HashSize {
			return fmt.Errorf("tlog store: stored hash %d is damaged", x)
		}
		into[x] = tlog.Hash(b)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("tlog store: read stored hashes: %w", err)
	}
	return nil
}

// Find implements tlog.Finder.
func (s TLogStore) Find(ctx context.Context, key string) ([]int64, error) {
	rows, err := s.db.reader.QueryContext(ctx, "SELECT idx FROM tlog_leaves WHERE org_id = $1 AND entry_key = $2 ORDER BY idx", s.org, key)
	if err != nil {
		return nil, fmt.Errorf("tlog store: find entries: %w", err)
	}
	defer rows.Close()
	out := []int64{}
	for rows.Next() {
		var x int64
		if err := rows.Scan(&x); err != nil {
			return nil, fmt.Errorf("tlog store: find entries: %w", err)
		}
		out = append(out, x)
	}
	return out, rows.Err()
}

// TLogKey returns an organization's checkpoint signing key (a note signer
// key) and its public verifier key. When there is none and create is not
// nil, it stores the pair create makes, unless another process stored one
// first: then it returns that one, so every replica signs with the same key.
// With create nil a missing key is a problem.KindNotFound error.
func (db *DB) TLogKey(ctx context.Context, orgID string, create func() (signer, verifier string, err error)) (signer, verifier string, err error) {
	read := func() error {
		return db.reader.QueryRowContext(ctx, "SELECT signer, verifier FROM tlog_keys WHERE org_id = $1", orgID).Scan(&signer, &verifier)
	}
	err = read()
	if !errors.Is(err, sql.ErrNoRows) {
		return signer, verifier, err
	}
	if create == nil {
		return "", "", problem.NotFound("organization %s has no transparency log yet", orgID)
	}
	newSigner, newVerifier, err := create()
	if err != nil {
		return "", "", err
	}
	err = db.Write(ctx, func(tx *Tx) error {
		_, err := tx.exec(ctx, `INSERT INTO tlog_keys (org_id, signer, verifier, created_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (org_id) DO NOTHING`, orgID, newSigner, newVerifier, us(db.clock.Now()))
		return err
	})
	if err != nil {
		return "", "", fmt.Errorf("store transparency log key: %w", err)
	}
	return signer, verifier, read()
}
