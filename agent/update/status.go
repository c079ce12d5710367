package update

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"

	"github.com/steward-iot/steward/agent/atomicfile"
	"github.com/steward-iot/steward/agent/client"
	"github.com/steward-iot/steward/agent/proto"
)

// Reporter sends one status report (agent/client.Client does).
type Reporter interface {
	ReportStatus(ctx context.Context, s proto.UpdateStatus) (proto.UpdateStatusResponse, error)
}

// StatusQueue keeps update status reports on disk until the server
// acknowledges them, so a report made just before a reboot or a power cut
// is still delivered, in order, after it. Each report keeps its ReportID
// across retries; the server stores it once.
type StatusQueue struct {
	path string
	mu   sync.Mutex
}

// OpenStatusQueue uses the file statuses.json in dir.
func OpenStatusQueue(dir string) (*StatusQueue, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return &StatusQueue{path: filepath.Join(dir, "statuses.json")}, nil
}

func (q *StatusQueue) load() ([]proto.UpdateStatus, error) {
	b, err := os.ReadFile(q.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var pending []proto.UpdateStatus
	if err := json.Unmarshal(b, &pending); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrQueueDamaged, q.path, err)
	}
	return pending, nil
}

// ErrQueueDamaged: the queue file does not parse (writes are atomic, so
// only the disk can have done this). Its reports are lost; the queue
// starts over so later reports still go out.
var ErrQueueDamaged = errors.New("update: the status queue file is damaged")

func (q *StatusQueue) save(pending []proto.UpdateStatus) error {
	b, err := json.Marshal(pending)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(q.path, b, 0o600)
}

// Add queues a report durably, giving it a ReportID if it has none.
func (q *StatusQueue) Add(s proto.UpdateStatus) (proto.UpdateStatus, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if s.ReportID == "" {
		s.ReportID = rand.Text()
	}
	pending, err := q.load()
	if err != nil && !errors.Is(err, ErrQueueDamaged) {
		return s, err
	}
	return s, q.save(append(pending, s))
}

// Pending returns the reports not yet acknowledged, oldest first.
func (q *StatusQueue) Pending() ([]proto.UpdateStatus, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.load()
}

// Flush sends pending reports in order, dropping each once acknowledged;
// it stops at the first failure (the rest keep their order for the next
// try) and returns how many were delivered.
func (q *StatusQueue) Flush(ctx context.Context, r Reporter) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	pending, err := q.load()
	if errors.Is(err, ErrQueueDamaged) {
		return 0, errors.Join(err, q.save(nil)) // said once, then start over
	}
	if err != nil {
		return 0, err
	}
	sent := 0
	var dropped []error
	for len(pending) > 0 {
		resp, err := r.ReportStatus(ctx, pending[0])
		if err == nil && !resp.Accepted {
			err = errors.New("update: the server did not accept the status report")
		}
		if err != nil && !refusedForGood(err) {
			return sent, errors.Join(append(dropped, err)...)
		}
		if err != nil {
			// Sending it again cannot help, and it must not hold back the
			// reports behind it (a "committed" among them).
			dropped = append(dropped, fmt.Errorf("update: status report %s (%s) dropped, the server refuses it: %w",
				pending[0].ReportID, pending[0].Step, err))
		} else {
			sent++
		}
		pending = pending[1:]
		if err := q.save(pending); err != nil {
			return sent, errors.Join(append(dropped, err)...)
		}
	}
	return sent, errors.Join(dropped...)
}

// refusedForGood says whether the server refused a report for what it
// says (a malformed or oversized report), not for who sent it or when:
// an unknown or revoked device, an expired token, rate limits and server
// errors are worth another try.
func refusedForGood(err error) bool {
	var ae *client.APIError
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.Status {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity:
		return true
	}
	return false
}
