package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/steward-iot/steward/internal/rollout"
)

// schedulerLockKey is the PostgreSQL advisory lock key of the rollout
// scheduler ("stewroll" in ASCII), shared by every replica.
const schedulerLockKey int64 = 0x73746577726f6c6c

// Elector elects the one rollout scheduler. On PostgreSQL it is a
// session-level advisory lock held on a dedicated connection: when the
// leader dies its session ends and the server releases the lock, so
// another replica's next attempt takes over — also when the leader's host
// vanished without closing its connection, since the session is bounded
// (see electionBounds). On SQLite (one process) it is an in-process mutex.
// retry is how often a follower tries again and how often the leader
// checks its connection.
func (db *DB) Elector(retry time.Duration) rollout.Elector {
	if retry <= 0 {
		retry = time.Second
	}
	if db.dialect == Postgres {
		return &pgElector{db: db, retry: retry, key: schedulerLockKey}
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
	key   int64
}

// Bounds of the PostgreSQL election, from the retry interval (at least a
// second, so that load on a healthy leader does not cost it leadership):
//
//   - the leader pings its lock session every retry; a ping that fails or
//     does not answer within pingTimeout ends leadership at once, so a
//     leader cut off from the server stops ticking within retry +
//     pingTimeout;
//   - the server ends the session of a leader that fell silent within
//     deadAfter = 3 × max(retry, 1 s): idle_session_timeout (PostgreSQL
//     14+) ends a session idle that long, TCP keepalives (idle, interval,
//     count 2) drop a connection whose host died without closing it, and
//     tcp_user_timeout (12+) one whose data goes unacknowledged. Ending the
//     session releases the lock, and a follower takes over at its next
//     attempt: within deadAfter + retry of the leader's last ping.
func electionBounds(retry time.Duration) (pingTimeout, deadAfter time.Duration) {
	base := max(retry, time.Second)
	return base, 3 * base
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

// acquire takes the lock on a connection of its own if it is free and
// bounds the session's life after its client falls silent; a nil
// connection means another replica leads.
func (e *pgElector) acquire(ctx context.Context) (*sql.Conn, error) {
	conn, err := e.db.writer.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("scheduler election: %w", err)
	}
	var got bool
	if err := conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock($1)", e.key).Scan(&got); err != nil || !got {
		conn.Close()
		return nil, err
	}
	if err := e.configure(ctx, conn); err != nil {
		discard(conn) // ends the session, and with it the lock
		return nil, fmt.Errorf("scheduler election: bound the leader's session: %w", err)
	}
	return conn, nil
}

// configure sets the session bounds of electionBounds on the lock
// session. They make the session unfit for the pool, so the leader's
// connection is always discarded when leadership ends.
func (e *pgElector) configure(ctx context.Context, conn *sql.Conn) error {
	var v string
	if err := conn.QueryRowContext(ctx, "SHOW server_version_num").Scan(&v); err != nil {
		return err
	}
	version, err := strconv.Atoi(v)
	if err != nil {
		return fmt.Errorf("server_version_num %q: %w", v, err)
	}
	_, dead := electionBounds(e.retry)
	step := strconv.Itoa(int((dead / 3).Seconds())) // keepalives are whole seconds
	ms := strconv.FormatInt(dead.Milliseconds(), 10)
	settings := [][2]string{{"tcp_keepalives_idle", step}, {"tcp_keepalives_interval", step}, {"tcp_keepalives_count", "2"}}
	if version >= 120000 {
		settings = append(settings, [2]string{"tcp_user_timeout", ms})
	}
	if version >= 140000 {
		settings = append(settings, [2]string{"idle_session_timeout", ms})
	}
	for _, kv := range settings {
		if _, err := conn.ExecContext(ctx, "SELECT set_config($1, $2, false)", kv[0], kv[1]); err != nil {
			return fmt.Errorf("set %s: %w", kv[0], err)
		}
	}
	return nil
}

// discard closes a connection without handing it back to the pool.
func discard(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	conn.Close()
}

// pinger is what the leader checks its lock session with.
type pinger interface {
	PingContext(ctx context.Context) error
}

// watch pings the lock session every every until leading ends; the first
// ping that fails or takes longer than timeout ends leadership (cancel)
// and reports false, since the lock may be gone with the session.
func watch(leading context.Context, cancel context.CancelFunc, p pinger, every, timeout time.Duration) (healthy bool) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-leading.Done():
			return true
		case <-t.C:
			ctx, stop := context.WithTimeout(leading, timeout)
			err := p.PingContext(ctx)
			stop()
			if err != nil {
				if leading.Err() != nil {
					return true // released meanwhile, not a failure
				}
				cancel()
				return false
			}
		}
	}
}

// try takes the lock if it is free; a nil context means another replica leads.
func (e *pgElector) try(ctx context.Context) (context.Context, func(), error) {
	conn, err := e.acquire(ctx)
	if err != nil || conn == nil {
		return nil, nil, err
	}
	leading, cancel := context.WithCancel(ctx)
	pingTimeout, _ := electionBounds(e.retry)
	healthy := make(chan bool, 1)
	go func() { healthy <- watch(leading, cancel, conn, e.retry, pingTimeout) }()
	var once sync.Once
	release := func() {
		once.Do(func() {
			cancel()
			if <-healthy {
				// Hand the lock over at once; closing the session would
				// release it too, a moment later.
				ctx, stop := context.WithTimeout(context.Background(), pingTimeout)
				var unlocked bool
				_ = conn.QueryRowContext(ctx, "SELECT pg_advisory_unlock($1)", e.key).Scan(&unlocked)
				stop()
			}
			discard(conn)
		})
	}
	return leading, release, nil
}
