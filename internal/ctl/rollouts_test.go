package ctl

import (
	"strings"
	"testing"

	"github.com/steward-iot/steward/internal/release"
	"github.com/steward-iot/steward/internal/rollout"
)

// TestRolloutCommands drives a rollout's life through the CLI: the
// what-if before launch, create, list, show, watch, devices, pause (twice:
// pausing is idempotent), resume and cancel (after which both are
// refused), and refusals of bad input that name the flag.
func TestRolloutCommands(t *testing.T) {
	s := newTestServer(t)
	s.newProduct(t)
	for _, d := range s.pending(t, 3) {
		ok(t, s.ctl(t, "devices", "accept", d.devID))
	}
	img, _, _ := randomFile(t, "gw-1.1.img", 8<<10, 7)
	rel := decode[release.Release](t, ok(t, s.ctl(t, "--json", "releases", "create", "--product", "gw", "--version", "1.1", "--artifact", img)).out)
	target := `product = "gw"`

	plan := ok(t, s.ctl(t, "rollouts", "plan", "--release", rel.ID, "--target", target, "--urgency", "scheduled", "--phases", "1:1h,10:4h,100")).out
	contains(t, plan, "3 devices", "the full image", "bytes to send", "time to 50%")

	failed(t, s.ctl(t, "rollouts", "create", "--release", rel.ID, "--target", target, "--urgency", "soon"), "urgency")
	failed(t, s.ctl(t, "rollouts", "create", "--release", rel.ID, "--target", target, "--urgency", "scheduled", "--phases", "50,10"), "phases")
	failed(t, s.ctl(t, "rollouts", "create", "--release", rel.ID, "--target", "product = ", "--urgency", "scheduled"), "target")
	failed(t, s.ctl(t, "rollouts", "create", "--release", "no-such-release", "--target", target, "--urgency", "scheduled"), "no-such-release")

	r := decode[rollout.Rollout](t, ok(t, s.ctl(t, "--json", "rollouts", "create", "--release", rel.ID, "--target", target,
		"--urgency", "scheduled", "--phases", "10:1h,100", "--name", "gw 1.1")).out)
	if r.State != "running" || r.ReleaseID != rel.ID || len(r.Phases) != 2 || r.Phases[0].Percent != 10 {
		t.Fatalf("created %+v", r)
	}
	contains(t, rowWith(t, ok(t, s.ctl(t, "rollouts", "list")).out, r.ID), "running", "scheduled")
	contains(t, ok(t, s.ctl(t, "rollouts", "show", r.ID)).out, "rollout "+r.ID, "urgency scheduled", "state running", "offered 0")
	ok(t, s.ctl(t, "rollouts", "devices", r.ID))

	contains(t, ok(t, s.ctl(t, "rollouts", "pause", r.ID)).out, "is paused")
	contains(t, ok(t, s.ctl(t, "rollouts", "pause", r.ID)).out, "is paused") // idempotent
	contains(t, ok(t, s.ctl(t, "rollouts", "resume", r.ID)).out, "is running")
	contains(t, ok(t, s.ctl(t, "rollouts", "cancel", r.ID)).out, "is cancelled")
	failed(t, s.ctl(t, "rollouts", "resume", r.ID), "cancelled")
	failed(t, s.ctl(t, "rollouts", "pause", r.ID), "only a running rollout can be paused")
	// A rollout that has ended: watch prints it once and returns.
	w := ok(t, s.ctl(t, "rollouts", "watch", r.ID, "--interval", "200ms")).out
	if n := strings.Count(w, "cancelled"); n != 1 {
		t.Fatalf("watch of an ended rollout printed %d lines:\n%s", n, w)
	}
	// What-if of the existing rollout by id.
	contains(t, ok(t, s.ctl(t, "rollouts", "plan", r.ID)).out, "3 devices")
}
