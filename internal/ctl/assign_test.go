package ctl

import (
	"testing"

	"github.com/steward-iot/steward/internal/release"
	"github.com/steward-iot/steward/internal/rollout"
)

func TestDeviceAssignment(t *testing.T) {
	s := newTestServer(t)
	s.newProduct(t)
	dev := s.pending(t, 1)[0]
	img, _, _ := randomFile(t, "gw-1.0.img", 4<<10, 3)
	rel := decode[release.Release](t, ok(t, s.ctl(t, "--json", "releases", "create", "--product", "gw", "--version", "1.0", "--artifact", img)).out)

	failed(t, s.ctl(t, "devices", "assignment", dev.devID), "no assigned release")
	contains(t, ok(t, s.ctl(t, "devices", "assign", dev.devID, rel.ID)).out, "will install release "+rel.ID)
	a := decode[rollout.Assignment](t, ok(t, s.ctl(t, "--json", "devices", "assignment", dev.devID)).out)
	if a.DeviceID != dev.devID || a.ReleaseID != rel.ID {
		t.Fatalf("assignment: %+v", a)
	}
	contains(t, ok(t, s.ctl(t, "devices", "assignment", dev.devID)).out, "DEVICE", "RELEASE", rel.ID)
	failed(t, s.ctl(t, "devices", "assign", dev.devID, "no-such-release"), "no release no-such-release")
	contains(t, ok(t, s.ctl(t, "devices", "unassign", dev.devID)).out, "has no assigned release now")
	failed(t, s.ctl(t, "devices", "unassign", dev.devID), "has no assigned release")
}
