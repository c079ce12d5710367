package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/steward-iot/steward/agent/proto"
	"github.com/steward-iot/steward/internal/id"
	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/release"
	"github.com/steward-iot/steward/internal/rollout"
	"github.com/steward-iot/steward/internal/store/storetest"
)

// postStatus sends one status report with the device's token.
func (d device) postStatus(t *testing.T, url string, body any) (int, proto.UpdateStatusResponse, proto.Problem) {
	t.Helper()
	tok, err := d.c.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", url+"/device/v1/updates/status", bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var ok proto.UpdateStatusResponse
	var p proto.Problem
	if res.StatusCode == 200 {
		err = json.Unmarshal(raw, &ok)
	} else {
		err = json.Unmarshal(raw, &p)
	}
	if err != nil {
		t.Fatalf("status %d: %s: %v", res.StatusCode, raw, err)
	}
	return res.StatusCode, ok, p
}

// TestUpdateStatusHistory walks a device through an update, replays a
// report, sends bad ones, and reads the history over the admin API.
func TestUpdateStatusHistory(t *testing.T) {
	for _, d := range storetest.Dialects(t) {
		t.Run(string(d), func(t *testing.T) {
			l := start(t, d)
			l.admin("POST", "/api/v1/orgs/acme/products", inventory.CreateProductRequest{Slug: "gw", Name: "GW", HardwareID: "gw-hw",
				Capability: inventory.CapabilityAB, LinkClass: "wifi"}, nil)
			l.admin("POST", "/api/v1/orgs/acme/products", inventory.CreateProductRequest{Slug: "cam", Name: "Cam", HardwareID: "cam-hw",
				Capability: inventory.CapabilityAB, LinkClass: "wifi"}, nil)
			art := l.upload("fw.img", []byte(strings.Repeat("image ", 100)))
			var rel, camRel release.Release
			l.admin("POST", "/api/v1/orgs/acme/releases", release.CreateReleaseRequest{Product: "gw", Version: "1.0.0",
				Artifacts: []release.ArtifactRef{{ID: art.ID}}}, &rel)
			l.admin("POST", "/api/v1/orgs/acme/releases", release.CreateReleaseRequest{Product: "cam", Version: "1.0.0",
				Artifacts: []release.ArtifactRef{{ID: art.ID}}}, &camRel)
			dev := l.device(t, "ST-1")

			at := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
			total := int64(600)
			steps := []string{proto.StepDownloading, proto.StepDownloaded, proto.StepInstalling, proto.StepRebooting, proto.StepCommitted}
			var reports []proto.UpdateStatus
			for i, step := range steps {
				r := proto.UpdateStatus{ReportID: id.New(), ReleaseID: rel.ID, Step: step, At: at.Add(time.Duration(i) * time.Minute)}
				if step == proto.StepDownloading {
					done := int64(0)
					r.BytesDone, r.BytesTotal = &done, &total
				}
				code, resp, p := dev.postStatus(t, l.url, r)
				if code != 200 || !resp.Accepted || resp.Duplicate {
					t.Fatalf("%s: %d %+v %+v", step, code, resp, p)
				}
				reports = append(reports, r)
			}
			history := func() []rollout.UpdateEvent {
				t.Helper()
				var page struct {
					Items []rollout.UpdateEvent `json:"items"`
				}
				l.admin("GET", "/api/v1/orgs/acme/devices/"+dev.id+"/updates", nil, &page)
				return page.Items
			}
			before := history()

			// A replayed report is acknowledged as a duplicate and changes nothing.
			if code, resp, p := dev.postStatus(t, l.url, reports[2]); code != 200 || !resp.Accepted || !resp.Duplicate {
				t.Fatalf("replay: %d %+v %+v", code, resp, p)
			}
			// Refused reports: 400 problems, nothing stored.
			for name, r := range map[string]proto.UpdateStatus{
				"failed without a reason": {ReportID: id.New(), ReleaseID: rel.ID, Step: proto.StepFailed, At: at},
				"unknown release":         {ReportID: id.New(), ReleaseID: id.New(), Step: proto.StepDownloading, At: at},
				"another product's":       {ReportID: id.New(), ReleaseID: camRel.ID, Step: proto.StepDownloading, At: at},
			} {
				if code, _, p := dev.postStatus(t, l.url, r); code != 400 || p.Status != 400 || p.Detail == "" {
					t.Errorf("%s: %d %+v, want a 400 problem", name, code, p)
				}
			}
			if code, _, _ := dev.postStatus(t, l.url, map[string]any{"report_id": "x", "surprise": true}); code != 400 {
				t.Errorf("unknown field: %d, want 400", code)
			}
			if code, _, _ := dev.postStatus(t, l.url, proto.UpdateStatus{ReportID: id.New(), ReleaseID: rel.ID, Step: proto.StepFailed,
				ReasonCode: proto.ReasonInstallFailed, Detail: strings.Repeat("x", proto.MaxStatusBody), At: at}); code != 413 {
				t.Errorf("oversized report: %d, want 413", code)
			}

			got := history()
			if len(got) != len(steps) || len(before) != len(steps) {
				t.Fatalf("history has %d events (%d before the replay), want %d", len(got), len(before), len(steps))
			}
			for i, e := range got {
				if e.Step != steps[i] || e.ReportID != reports[i].ReportID || e.ReleaseID != rel.ID || e.Version != "1.0.0" ||
					e.DeviceID != dev.id || !e.DeviceTime.Equal(reports[i].At) || e.ID != before[i].ID {
					t.Fatalf("event %d: %+v, want step %s of report %s", i, e, steps[i], reports[i].ReportID)
				}
			}
			if e := got[0]; e.BytesTotal == nil || *e.BytesTotal != total {
				t.Fatalf("downloading event lost its byte counts: %+v", e)
			}

			// No device token, no report.
			res, err := http.Post(l.url+"/device/v1/updates/status", "application/json", strings.NewReader("{}"))
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != 401 {
				t.Fatalf("without a device token: %d, want 401", res.StatusCode)
			}
		})
	}
}
