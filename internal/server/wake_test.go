package server_test

import (
	"testing"
	"time"

	"github.com/steward-iot/steward/agent/wake"
	"github.com/steward-iot/steward/agent/wake/waketest"
	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/release"
	"github.com/steward-iot/steward/internal/rollout"
	"github.com/steward-iot/steward/internal/server"
	"github.com/steward-iot/steward/internal/store"
	internalwake "github.com/steward-iot/steward/internal/wake"
)

// TestImmediateRolloutWakesDevices: a server with --mqtt-url publishes a
// wake-up on the organization's topic (by slug) when an immediate rollout
// starts, through the real Mosquitto broker; a scheduled rollout wakes no
// one.
func TestImmediateRolloutWakesDevices(t *testing.T) {
	broker := waketest.BrokerAddr(t)
	prefix := waketest.Prefix(t)
	l := startWith(t, store.SQLite, func(c *server.Config) {
		c.Wake = internalwake.Config{Broker: wake.Broker{URL: "tcp://" + broker}, TopicPrefix: prefix}
		c.RolloutInterval = 100 * time.Millisecond
	})
	topic, err := wake.OrgTopic(prefix, "acme")
	if err != nil {
		t.Fatal(err)
	}
	rec := waketest.Subscribe(t, broker, prefix+"/#")
	l.admin("POST", "/api/v1/orgs/acme/products", inventory.CreateProductRequest{Slug: "gw", Name: "GW", HardwareID: "gw-hw",
		Capability: inventory.CapabilityAB, LinkClass: "wifi"}, nil)
	var rel release.Release
	l.admin("POST", "/api/v1/orgs/acme/releases", release.CreateReleaseRequest{Product: "gw", Version: "1.0",
		Artifacts: []release.ArtifactRef{{ID: l.upload("fw.img", []byte("image one")).ID}}}, &rel)
	l.device(t, "WAKE-1").checkin(t, "0.9")

	var scheduled, immediate rollout.Rollout
	l.admin("POST", "/api/v1/orgs/acme/rollouts", rollout.CreateRequest{ReleaseID: rel.ID, TargetQuery: `product = "gw"`,
		Urgency: "scheduled"}, &scheduled)
	l.admin("POST", "/api/v1/orgs/acme/rollouts", rollout.CreateRequest{ReleaseID: rel.ID, TargetQuery: `product = "gw"`,
		Urgency: "immediate"}, &immediate)
	var got []waketest.Message
	waketest.Eventually(t, func() bool {
		got = rec.Messages()
		return len(got) > 0
	}, "no wake-up reached the broker")
	for _, m := range got {
		p, err := wake.ParsePayload(m.Payload)
		if err != nil {
			t.Fatalf("wake-up %s: %v", m.Payload, err)
		}
		if m.Topic != topic || m.Retained || p.RolloutID != immediate.ID {
			t.Fatalf("wake-up on %s (retained %v) for rollout %q, want %s for the immediate rollout %s",
				m.Topic, m.Retained, p.RolloutID, topic, immediate.ID)
		}
		if p.RolloutID == scheduled.ID {
			t.Fatalf("the scheduled rollout %s woke devices", scheduled.ID)
		}
	}
}
