package ctl

import (
	"testing"
	"time"

	"github.com/steward-iot/steward/agent/proto"
	"github.com/steward-iot/steward/internal/release"
	"github.com/steward-iot/steward/internal/rollout"
)

func TestDeviceUpdateHistory(t *testing.T) {
	s := newTestServer(t)
	s.newProduct(t)
	dev := s.pending(t, 1)[0]
	ok(t, s.ctl(t, "devices", "accept", dev.devID))
	img, _, _ := randomFile(t, "gw-1.0.img", 4<<10, 3)
	rel := decode[release.Release](t, ok(t, s.ctl(t, "--json", "releases", "create", "--product", "gw", "--version", "1.0", "--artifact", img)).out)

	var auth proto.AuthResponse
	s.devicePost(t, dev, "/device/v1/auth", proto.AuthRequest{KeyID: dev.id.KeyID(), Timestamp: time.Now()}, true, "", &auth)
	done, total := int64(1024), int64(4096)
	for _, r := range []proto.UpdateStatus{
		{ReportID: "r1", ReleaseID: rel.ID, Step: proto.StepDownloading, BytesDone: &done, BytesTotal: &total, At: time.Now()},
		{ReportID: "r2", ReleaseID: rel.ID, Step: proto.StepFailed, ReasonCode: proto.ReasonPowerLoss, Detail: "brown-out", At: time.Now()},
	} {
		var resp proto.UpdateStatusResponse
		s.devicePost(t, dev, "/device/v1/updates/status", r, false, auth.Token, &resp)
		if !resp.Accepted || resp.Duplicate {
			t.Fatalf("%s: %+v", r.ReportID, resp)
		}
	}

	contains(t, ok(t, s.ctl(t, "devices", "updates", dev.devID)).out,
		"RECEIVED", "STEP", "REASON", "downloading", "1.0 KiB/4.0 KiB (25%)", "failed", "power-loss", "brown-out", rel.ID)
	evs := decode[[]rollout.UpdateEvent](t, ok(t, s.ctl(t, "--json", "devices", "updates", dev.devID)).out)
	if len(evs) != 2 || evs[0].ReportID != "r1" || evs[1].Step != proto.StepFailed {
		t.Fatalf("history: %+v", evs)
	}
	failed(t, s.ctl(t, "devices", "updates", "no-such-device"), "not found")
}
