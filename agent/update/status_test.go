package update

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/steward-iot/steward/agent/client"
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

// scriptedReporter answers each report with the error its step names.
type scriptedReporter struct {
	errs map[string]error
	sent []string
}

func (r *scriptedReporter) ReportStatus(_ context.Context, s proto.UpdateStatus) (proto.UpdateStatusResponse, error) {
	if err := r.errs[s.Step]; err != nil {
		return proto.UpdateStatusResponse{}, err
	}
	r.sent = append(r.sent, s.ReportID)
	return proto.UpdateStatusResponse{Accepted: true}, nil
}

// TestStatusQueueDropsReportsRefusedForGood: a report the server refuses
// for what it says (400) is dropped so the reports behind it, "committed"
// among them, still go out; one refused for now (401, 429, 503, the
// network) stops the flush and is kept, in order.
func TestStatusQueueDropsReportsRefusedForGood(t *testing.T) {
	q, err := OpenStatusQueue(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{proto.StepInstalling, proto.StepRebooting, proto.StepCommitted} {
		if _, err := q.Add(proto.UpdateStatus{ReportID: s, ReleaseID: "r", Step: s}); err != nil {
			t.Fatal(err)
		}
	}
	r := &scriptedReporter{errs: map[string]error{
		proto.StepInstalling: &client.APIError{Status: 400},
		proto.StepRebooting:  &client.APIError{Status: 503},
	}}
	sent, err := q.Flush(context.Background(), r)
	if sent != 0 || err == nil || !strings.Contains(err.Error(), "dropped") {
		t.Fatalf("first flush: sent %d, %v", sent, err)
	}
	if p, _ := q.Pending(); len(p) != 2 || p[0].Step != proto.StepRebooting {
		t.Fatalf("kept %+v, want the 503 report first", p)
	}
	delete(r.errs, proto.StepRebooting)
	if sent, err := q.Flush(context.Background(), r); sent != 2 || err != nil {
		t.Fatalf("second flush: sent %d, %v", sent, err)
	}
	if strings.Join(r.sent, ",") != "rebooting,committed" {
		t.Fatalf("sent %v", r.sent)
	}
}

// TestTruncateUTF8 cuts on a character boundary, so that the JSON of the
// detail stays within the server's limit.
func TestTruncateUTF8(t *testing.T) {
	s := strings.Repeat("a", proto.MaxStatusDetail-1) + "é and more"
	got := truncateUTF8(s, proto.MaxStatusDetail)
	if !utf8.ValidString(got) || len(got) != proto.MaxStatusDetail-1 {
		t.Fatalf("cut to %d bytes, valid %v", len(got), utf8.ValidString(got))
	}
	b, _ := json.Marshal(got)
	if len(b)-2 > proto.MaxStatusDetail {
		t.Fatalf("JSON of the detail is %d bytes", len(b)-2)
	}
	if truncateUTF8("short", 10) != "short" {
		t.Fatal("a short detail changed")
	}
}
