package store

import (
	"context"
	"database/sql/driver"
	"fmt"
	"sync"
	"time"

	"github.com/steward-iot/steward/internal/rollout"
)

// schedulerLockKey is the PostgreSQL advisory lock key of the rollout
// scheduler ("stewroll" in ASCII), shared by every replica.
const schedulerLockKey int64 = 0x73746577726f6c6c

// Elector elects the one rollout scheduler. On PostgreSQL it is a
// session-level advisory lock held on a dedicated connection: when the
// leader dies its connection closes and the server releases the lock, so
// another replica's next attempt takes over. On SQLite (one process) it
// is an in-process mutex. retry is how often a follower tries again and
// how often the leader checks its connection.
func (db *DB) Elector(retry time.Duration) rollout.Elector {
	if retry <= 0 {
		retry = time.Second
	}
	if db.dialect == Postgres {
		return &pgElector{db: db, retry: retry}
	}
	return &localElector{mu: sqliteLeader(db), retry: retry}
}

var (
	leadersMu sync.Mutex
	leaders   = map[*DB]*sync.Mutex{}
)

func sqliteLeader(db *DB) *sync.Mutex {
	leadersMu.Lock()
	defer leadersMu.Unlock()
	if leaders[db] == nil {
		leaders[db] = &sync.Mutex{}
	}
	return leaders[db]
}

type localElector struct {
	mu    *sync.Mutex
	retry time.Duration
}

func (e *localElector) Lead(ctx context.Context) (context.Context, func(), error) {
	for !e.mu.TryLock() {
		t := time.NewTimer(e.retry)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, nil, ctx.Err()
		case <-t.C:
		}
	}
	leading, cancel := context.WithCancel(ctx)
	var once sync.Once
	return leading, func() { once.Do(func() { cancel(); e.mu.Unlock() }) }, nil
}

type pgElector struct {
	db    *DB
	retry time.Duration
}

func (e *pgElector) Lead(ctx context.Context) (context.Context, func(), error) {
	for {
		leading, release, err := e.try(ctx)
		if err == nil && leading != nil {
			return leading, release, nil
		}
		t := time.NewTimer(e.retry)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, nil, ctx.Err()
		case <-t.C:
		}
	}
}

// try takes the lock if it is free; a nil context means another replica leads.
func (e *pgElector) try(ctx context.Context) (context.Context, func(), error) {
	conn, err := e.db.writer.Conn(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("scheduler election: %w", err)
	}
	var got bool
	if err := conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock($1)", schedulerLockKey).Scan(&got); err != nil || !got {
		conn.Close()
		return nil, nil, err
	}
	leading, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		// The lock lives as long as the session: watch it, and give up
		// leadership the moment the connection fails.
		defer close(done)
		t := time.NewTicker(e.retry)
		defer t.Stop()
		for {
			select {
			case <-leading.Done():
				return
			case <-t.C:
				if err := conn.PingContext(leading); err != nil {
					cancel()
					return
				}
			}
		}
	}()
	var once sync.Once
	release := func() {
		once.Do(func() {
			cancel()
			<-done
			ctx, stop := context.WithTimeout(context.Background(), 5*time.Second)
			defer stop()
			var unlocked bool
			if err := conn.QueryRowContext(ctx, "SELECT pg_advisory_unlock($1)", schedulerLockKey).Scan(&unlocked); err != nil || !unlocked {
				// Never hand a session that may still hold the lock back
				// to the pool: discard the connection instead.
				_ = conn.Raw(func(any) error { return driver.ErrBadConn })
			}
			conn.Close()
		})
	}
	return leading, release, nil
}
