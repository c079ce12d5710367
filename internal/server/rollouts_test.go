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
	"github.com/steward-iot/steward/internal/audit"
	"github.com/steward-iot/steward/internal/id"
	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/release"
	"github.com/steward-iot/steward/internal/rollout"
	"github.com/steward-iot/steward/internal/store/storetest"
)

// checkinOffer checks in and returns the whole reply.
func (d device) checkinOffer(t *testing.T, version string) proto.CheckinResponse {
	t.Helper()
	resp, err := d.c.Checkin(context.Background(), proto.CheckinRequest{Installed: proto.Installed{Version: version},
		State: proto.State{OnMains: true, Link: proto.LinkEthernet, FreeStorage: 1 << 30}})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestRolloutThroughLiveServer creates a rollout over the admin API (an
// Idempotency-Key repeat returns the same one), has real devices check in
// and report status over the device API, watches the elected scheduler
// pause it on a failure, and controls it over the API.
func TestRolloutThroughLiveServer(t *testing.T) {
	t.Setenv("STEWARD_ROLLOUT_INTERVAL", "100ms")
	for _, d := range storetest.Dialects(t) {
		t.Run(string(d), func(t *testing.T) {
			l := start(t, d)
			l.admin("POST", "/api/v1/orgs/acme/products", inventory.CreateProductRequest{Slug: "gw", Name: "GW", HardwareID: "gw-hw",
				Capability: inventory.CapabilityAB, LinkClass: "wifi"}, nil)
			var v1, v2 release.Release
			l.admin("POST", "/api/v1/orgs/acme/releases", release.CreateReleaseRequest{Product: "gw", Version: "1.0",
				Artifacts: []release.ArtifactRef{{ID: l.upload("fw1.img", []byte(strings.Repeat("one ", 200))).ID}}}, &v1)
			l.admin("POST", "/api/v1/orgs/acme/releases", release.CreateReleaseRequest{Product: "gw", Version: "2.0",
				Artifacts: []release.ArtifactRef{{ID: l.upload("fw2.img", []byte(strings.Repeat("two ", 200))).ID}}}, &v2)
			eu1, eu2, us := l.device(t, "EU-1"), l.device(t, "EU-2"), l.device(t, "US-1")
			for _, x := range []struct {
				d      device
				region string
			}{{eu1, "eu"}, {eu2, "eu"}, {us, "us"}} {
				l.admin("PUT", "/api/v1/orgs/acme/devices/"+x.d.id+"/tags", map[string]any{"tags": map[string]string{"region": x.region}}, nil)
			}

			req := rollout.CreateRequest{ReleaseID: v2.ID, TargetQuery: `tag.region = "eu"`, Urgency: rollout.UrgencyImmediate,
				Phases: []rollout.Phase{{Percent: 100}}, PauseFailureCount: 1}
			key := id.New()
			var r, again rollout.Rollout
			l.adminIdem("POST", "/api/v1/orgs/acme/rollouts", key, req, &r)
			l.adminIdem("POST", "/api/v1/orgs/acme/rollouts", key, req, &again)
			if r.ID == "" || again.ID != r.ID || r.State != rollout.StateRunning || r.Mode != rollout.ModeForced {
				t.Fatalf("create and idempotent repeat: %+v / %+v", r, again)
			}

			// What-if: the two eu devices, each sent the delta from 1.0 made
			// at release time, by API for the new rollout and for a request
			// not yet created.
			for _, d := range []device{eu1, eu2, us} {
				d.checkinOffer(t, "1.0") // report a version and a link
			}
			waitSeen := time.Now().Add(5 * time.Second)
			var plans [2]rollout.Plan
			for {
				plans = [2]rollout.Plan{}
				l.admin("GET", "/api/v1/orgs/acme/rollouts/"+r.ID+"/plan", nil, &plans[0])
				l.admin("POST", "/api/v1/orgs/acme/rollouts/plan", req, &plans[1])
				if plans[0].PerLink[proto.LinkEthernet].Devices == 2 || time.Now().After(waitSeen) {
					break // the batched last-seen state has been flushed
				}
				time.Sleep(50 * time.Millisecond)
			}
			for i, p := range plans {
				if p.Devices != 2 || p.DevicesDelta != 2 || p.TotalBytes != p.DeltaBytes || p.TotalBytes+p.SavedBytes != 2*800 ||
					!p.Reached95 || len(p.PerLink) != 1 || p.PerLink[proto.LinkEthernet].Devices != 2 || len(p.Phases) != 1 {
					t.Fatalf("plan %d: %+v", i, p)
				}
			}

			for _, d := range []device{eu1, eu2} {
				resp := d.checkinOffer(t, "1.0")
				if resp.Action != proto.ActionUpdate || resp.Update == nil || resp.Update.RolloutID != r.ID ||
					resp.Update.Mode != proto.ModeForced || resp.Update.Urgency != rollout.UrgencyImmediate {
					t.Fatalf("eu device check-in: %+v %+v", resp, resp.Update)
				}
			}
			if resp := us.checkinOffer(t, "1.0"); resp.Action != proto.ActionNone || resp.Update != nil {
				t.Fatalf("a device outside the target: %+v", resp)
			}
			report := func(d device, step, reason string) {
				t.Helper()
				code, _, p := d.postStatus(t, l.url, proto.UpdateStatus{ReportID: id.New(), ReleaseID: v2.ID, Step: step,
					ReasonCode: reason, At: time.Now().UTC()})
				if code != 200 {
					t.Fatalf("%s: %d %+v", step, code, p)
				}
			}
			report(eu1, proto.StepDownloading, "")
			report(eu1, proto.StepCommitted, "")
			if resp := eu1.checkinOffer(t, "2.0"); resp.Action != proto.ActionNone {
				t.Fatalf("an updated device is told to update: %+v", resp)
			}
			report(eu2, proto.StepFailed, proto.ReasonInstallFailed)

			// The scheduler (elected in this process) pauses on the failure.
			var pr rollout.Progress
			deadline := time.Now().Add(10 * time.Second)
			for {
				plans = [2]rollout.Plan{}
				l.admin("GET", "/api/v1/orgs/acme/rollouts/"+r.ID, nil, &pr)
				if pr.State == rollout.StatePaused || time.Now().After(deadline) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if pr.State != rollout.StatePaused || pr.Succeeded != 1 || pr.Failed != 1 || pr.Offered != 2 ||
				pr.Devices[rollout.DUSucceeded] != 1 || pr.Devices[rollout.DUFailed] != 1 || pr.Version != "2.0" ||
				len(pr.PhaseDetails) != 1 || pr.PhaseDetails[0].Devices[rollout.DUFailed] != 1 {
				t.Fatalf("progress: %+v", pr)
			}
			var devs struct {
				Items []rollout.DeviceUpdate `json:"items"`
			}
			l.admin("GET", "/api/v1/orgs/acme/rollouts/"+r.ID+"/devices?state=failed", nil, &devs)
			if len(devs.Items) != 1 || devs.Items[0].DeviceID != eu2.id || devs.Items[0].Reason != proto.ReasonInstallFailed {
				t.Fatalf("failed devices: %+v", devs.Items)
			}
			var list struct {
				Items []rollout.Rollout `json:"items"`
			}
			l.admin("GET", "/api/v1/orgs/acme/rollouts?state=paused", nil, &list)
			if len(list.Items) != 1 || list.Items[0].ID != r.ID {
				t.Fatalf("paused rollouts: %+v", list.Items)
			}

			var got rollout.Rollout
			l.admin("POST", "/api/v1/orgs/acme/rollouts/"+r.ID+"/resume", nil, &got)
			if got.State != rollout.StateRunning {
				t.Fatalf("resume: %+v", got)
			}
			// eu2 failed with retries left: its next check-in is a new attempt.
			if resp := eu2.checkinOffer(t, "1.0"); resp.Action != proto.ActionUpdate {
				t.Fatalf("retry after resume: %+v", resp)
			}
			l.admin("POST", "/api/v1/orgs/acme/rollouts/"+r.ID+"/cancel", nil, &got)
			if got.State != rollout.StateCancelled {
				t.Fatalf("cancel: %+v", got)
			}
			if resp := eu2.checkinOffer(t, "1.0"); resp.Action != proto.ActionNone {
				t.Fatalf("an unstarted device after cancel: %+v", resp)
			}
			if code := l.status("POST", "/api/v1/orgs/acme/rollouts/"+r.ID+"/pause"); code != http.StatusConflict {
				t.Fatalf("pausing a cancelled rollout: %d", code)
			}
			var events struct {
				Items []audit.Event `json:"items"`
			}
			l.admin("GET", "/api/v1/orgs/acme/audit?action=rollout.", nil, &events)
			seen := map[string]int{}
			for _, e := range events.Items {
				seen[e.Action]++
			}
			for action, n := range map[string]int{"rollout.create": 1, "rollout.pause": 1, "rollout.resume": 1, "rollout.cancel": 1, "rollout.offer": 3} {
				if seen[action] != n {
					t.Errorf("audit %s: %d events, want %d (all: %v)", action, seen[action], n, seen)
				}
			}
		})
	}
}

// adminIdem sends an admin request with an Idempotency-Key.
func (l *live) adminIdem(method, path, key string, body, out any) {
	l.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, l.url+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+l.token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		l.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusCreated {
		l.t.Fatalf("%s %s: %d %s", method, path, res.StatusCode, raw)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		l.t.Fatal(err)
	}
}

// status sends a body-less admin request and returns the status code.
func (l *live) status(method, path string) int {
	l.t.Helper()
	req, _ := http.NewRequest(method, l.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+l.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		l.t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}
