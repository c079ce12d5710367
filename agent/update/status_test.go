package update

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/steward-iot/steward/agent/proto"
)

func TestStatusQueueKeepsIDsAndRefusesDamage(t *testing.T) {
	dir := t.TempDir()
	q, err := OpenStatusQueue(dir)
	if err != nil {
		t.Fatal(err)
	}
	a, err := q.Add(proto.UpdateStatus{ReleaseID: "r", Step: proto.StepDownloading})
	if err != nil || a.ReportID == "" {
		t.Fatalf("add: %+v %v", a, err)
	}
	b, _ := q.Add(proto.UpdateStatus{ReportID: "mine", ReleaseID: "r", Step: proto.StepDownloaded})
	p, err := q.Pending()
	if err != nil || len(p) != 2 || p[0].ReportID != a.ReportID || p[1].ReportID != "mine" || b.ReportID != "mine" {
		t.Fatalf("pending: %+v %v", p, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "statuses.json"), []byte(`[{"report_id":`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Pending(); !errors.Is(err, ErrQueueDamaged) {
		t.Fatalf("damaged queue: %v", err)
	}
	// Reporting goes on: a new report starts a fresh queue.
	if _, err := q.Add(proto.UpdateStatus{ReportID: "after", ReleaseID: "r", Step: proto.StepInstalling}); err != nil {
		t.Fatal(err)
	}
	if p, err := q.Pending(); err != nil || len(p) != 1 || p[0].ReportID != "after" {
		t.Fatalf("after damage: %+v %v", p, err)
	}
}
