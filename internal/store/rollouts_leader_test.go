package store

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// electionPG opens the PostgreSQL test server directly: storetest imports
// this package, so this internal test cannot use it. The election needs no
// schema, only sessions.
func electionPG(t *testing.T) *DB {
	t.Helper()
	dsn := os.Getenv("STEWARD_TEST_PG")
	switch dsn {
	case "skip":
		if os.Getenv("CI") == "true" {
			t.Fatal("STEWARD_TEST_PG=skip is not allowed in CI: the PostgreSQL contract must run")
		}
		t.Skip("STEWARD_TEST_PG=skip")
	case "":
		dsn = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := OpenPostgres(ctx, dsn, Options{MaxConns: 4})
	if err != nil {
		t.Fatalf("PostgreSQL test server: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// testLockKey is a random advisory lock key, so this test never contends
// with a scheduler of another test on the same server.
func testLockKey() int64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return int64(binary.BigEndian.Uint64(b[:]) >> 1)
}

// TestLeaderSessionBounded: the leader's lock session carries the bounds
// of electionBounds (TCP keepalives, tcp_user_timeout, and
// idle_session_timeout on PostgreSQL 14+), and a leader that falls silent
// without closing its connection — a host that lost power, a partition, a
// frozen process — loses the lock within deadAfter, so a follower can
// take over; before, the lock stayed until TCP keepalive's OS defaults
// (about two hours) noticed.
func TestLeaderSessionBounded(t *testing.T) {
	t.Parallel()
	db := electionPG(t)
	ctx := context.Background()
	e := &pgElector{db: db, retry: time.Second, key: testLockKey()}
	conn, err := e.acquire(ctx)
	if err != nil || conn == nil {
		t.Fatalf("acquire a free lock: %v %v", conn, err)
	}
	defer discard(conn)
	var version int
	if err := conn.QueryRowContext(ctx, "SELECT current_setting('server_version_num')::int").Scan(&version); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"tcp_keepalives_idle": "1", "tcp_keepalives_interval": "1", "tcp_keepalives_count": "2",
		"tcp_user_timeout": "3000", "idle_session_timeout": "3000"}
	if version < 140000 {
		delete(want, "idle_session_timeout")
	}
	for name, v := range want {
		var got string
		if err := conn.QueryRowContext(ctx, "SELECT setting FROM pg_settings WHERE name = $1", name).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != v {
			t.Errorf("%s on the leader's session = %s, want %s", name, got, v)
		}
	}
	// A second elector cannot take the lock while the leader's session lives.
	f := &pgElector{db: db, retry: time.Second, key: e.key}
	if c, err := f.acquire(ctx); err != nil || c != nil {
		t.Fatalf("a follower took a held lock: %v %v", c, err)
	}
	// The leader now falls silent without closing its connection: the
	// server ends its session, and the follower takes over.
	_, dead := electionBounds(e.retry)
	deadline := time.Now().Add(dead + 20*time.Second) // generous: a loaded CI machine
	for {
		c, err := f.acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if c != nil {
			discard(c)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the silent leader still holds the lock %v after its last query", dead+20*time.Second)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := conn.PingContext(ctx); err == nil {
		t.Fatal("the silent leader's session still answers after the server ended it")
	}
}

// fakePing answers pings as told and records whether each had a deadline.
type fakePing struct {
	block    bool  // never answer; return when the context ends
	fail     error // answer with this error
	calls    atomic.Int32
	deadline atomic.Bool
}

func (p *fakePing) PingContext(ctx context.Context) error {
	p.calls.Add(1)
	if _, ok := ctx.Deadline(); ok {
		p.deadline.Store(true)
	}
	if p.block {
		<-ctx.Done()
		return ctx.Err()
	}
	return p.fail
}

// TestWatchStepsDown: a leader whose ping does not answer within its
// timeout (a half-open connection) or fails gives up leadership at once —
// its scheduler stops ticking — and says the session is not healthy; a
// healthy one keeps leading until released.
func TestWatchStepsDown(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		p    *fakePing
		lost bool
	}{
		{"hangs", &fakePing{block: true}, true},
		{"fails", &fakePing{fail: errors.New("connection reset")}, true},
		{"healthy", &fakePing{}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			leading, cancel := context.WithCancel(context.Background())
			defer cancel()
			healthy := make(chan bool, 1)
			go func() { healthy <- watch(leading, cancel, c.p, time.Millisecond, 20*time.Millisecond) }()
			if !c.lost {
				for c.p.calls.Load() < 5 {
					time.Sleep(time.Millisecond)
				}
				if leading.Err() != nil {
					t.Fatal("a leader with a healthy session lost leadership")
				}
				cancel() // release
			}
			select {
			case h := <-healthy:
				if h == c.lost {
					t.Fatalf("watch reported healthy=%v", h)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("watch did not return")
			}
			if leading.Err() == nil {
				t.Fatal("leadership did not end")
			}
			if !c.p.deadline.Load() {
				t.Fatal("the ping had no deadline: a half-open connection would block it for minutes")
			}
		})
	}
}
