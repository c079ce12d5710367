package server_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/steward-iot/steward/agent/proto"
	"github.com/steward-iot/steward/agent/update"
	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/release"
	"github.com/steward-iot/steward/internal/rollout"
	"github.com/steward-iot/steward/internal/store"
)

// flaky fails its first n reports, as a link that drops does.
type flaky struct {
	update.Reporter
	n int
}

func (f *flaky) ReportStatus(ctx context.Context, s proto.UpdateStatus) (proto.UpdateStatusResponse, error) {
	if f.n > 0 {
		f.n--
		return proto.UpdateStatusResponse{}, errors.New("connection reset")
	}
	return f.Reporter.ReportStatus(ctx, s)
}

// TestStatusQueueDeliversAcrossRestarts queues a device's reports on disk,
// fails to send them, reopens the queue as after a reboot, and checks that
// they arrive once each, in order, including one whose acknowledgement was
// lost the first time.
func TestStatusQueueDeliversAcrossRestarts(t *testing.T) {
	l := start(t, store.SQLite)
	l.admin("POST", "/api/v1/orgs/acme/products", inventory.CreateProductRequest{Slug: "gw", Name: "GW", HardwareID: "gw-hw",
		Capability: inventory.CapabilityAB, LinkClass: "wifi"}, nil)
	a := l.upload("fw.img", []byte(strings.Repeat("firmware ", 100)))
	var r release.Release
	l.admin("POST", "/api/v1/orgs/acme/releases", release.CreateReleaseRequest{Product: "gw", Version: "1.0.0",
		Artifacts: []release.ArtifactRef{{ID: a.ID}}}, &r)
	dev := l.device(t, "Q-1")
	l.admin("PUT", "/api/v1/orgs/acme/devices/"+dev.id+"/assignment", rollout.AssignRequest{ReleaseID: r.ID}, nil)

	dir := t.TempDir()
	q, err := update.OpenStatusQueue(dir)
	if err != nil {
		t.Fatal(err)
	}
	steps := []string{proto.StepDownloading, proto.StepDownloaded, proto.StepInstalling}
	var first proto.UpdateStatus
	for i, step := range steps {
		s, err := q.Add(proto.UpdateStatus{ReleaseID: r.ID, Step: step, At: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = s
		}
	}
	// The first report reached the server but its answer was lost.
	if _, err := dev.c.ReportStatus(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	if n, err := q.Flush(context.Background(), &flaky{Reporter: dev.c, n: 1}); err == nil || n != 0 {
		t.Fatalf("flush over a dropped link: %d sent, %v", n, err)
	}
	// A reboot: the queue is read back from disk.
	q, err = update.OpenStatusQueue(dir)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := q.Pending(); err != nil || len(p) != 3 || p[0].ReportID != first.ReportID {
		t.Fatalf("after restart: %d pending, %v", len(p), err)
	}
	if n, err := q.Flush(context.Background(), dev.c); err != nil || n != 3 {
		t.Fatalf("flush: %d sent, %v", n, err)
	}
	if p, _ := q.Pending(); len(p) != 0 {
		t.Fatalf("%d reports still pending after they were acknowledged", len(p))
	}
	var page struct{ Items []rollout.UpdateEvent }
	l.admin("GET", "/api/v1/orgs/acme/devices/"+dev.id+"/updates", nil, &page)
	if len(page.Items) != 3 {
		t.Fatalf("history has %d events, want 3 (each report once)", len(page.Items))
	}
	for i, e := range page.Items {
		if e.Step != steps[i] {
			t.Fatalf("history %d: %s, want %s", i, e.Step, steps[i])
		}
	}
}
