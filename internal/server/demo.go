package server

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/steward-iot/steward/agent/simulator"
	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/identity"
	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/problem"
)

// demoProducts are the two device models `serve --demo` declares.
var demoProducts = []inventory.CreateProductRequest{
	{Slug: "gw-100", Name: "GW-100 home gateway", HardwareID: "gw-100", Capability: inventory.CapabilityAB, LinkClass: "ethernet",
		EndOfSupport: "2032-12-31"},
	{Slug: "sensor-7", Name: "Sensor-7 battery sensor", HardwareID: "sensor-7", Capability: inventory.CapabilityMCUSUIT,
		LinkClass: "nb-iot", BatteryPowered: true, EndOfSupport: "2030-06-30"},
}

// demoPending is how many demo devices enroll without a token and wait
// for an operator, so a newcomer has something to accept.
const demoPending = 3

// runDemo seeds the instance organization (which the bootstrap admin token
// reaches) with the demo products and runs a simulated fleet against this
// server until ctx ends. Each start adds a fresh fleet: the simulated keys
// live only in memory.
func (s *Server) runDemo(ctx context.Context, addr net.Addr) {
	tokenSecret, org, err := s.seedDemo(ctx)
	if err != nil {
		s.log.Error("demo: seeding failed", "err", err)
		return
	}
	url := "http://" + addr.String()
	fleets := []simulator.Config{
		{ServerURL: url, Devices: s.cfg.Demo, EnrollmentToken: tokenSecret, EnrollRate: 50,
			HardwareIDs: choices("gw-100", 3, "sensor-7", 2), Versions: choices("2.3.0", 2, "2.4.0", 5, "2.4.1", 3),
			Links: choices("ethernet", 2, "wifi", 3, "cellular", 1, "nb-iot", 2), BatteryShare: 0.35, OfflineChurn: 0.02, ChurnPeriod: time.Minute},
		{ServerURL: url, Devices: demoPending, Org: org, HardwareIDs: choices("gw-100", 1), Versions: choices("2.2.0", 1)},
	}
	for _, cfg := range fleets {
		sim, err := simulator.New(cfg)
		if err != nil {
			s.log.Error("demo: simulator", "err", err)
			return
		}
		go func() {
			if err := sim.Run(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("demo: simulated fleet stopped", "err", err)
			}
		}()
	}
	s.log.Info("demo: simulated fleet running; try `steward ctl devices list` and `steward ctl versions --product gw-100`",
		"devices", s.cfg.Demo, "pending", demoPending, "org", org)
}

func choices(kv ...any) []simulator.Choice {
	var out []simulator.Choice
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, simulator.Choice{Value: kv[i].(string), Weight: float64(kv[i+1].(int))})
	}
	return out
}

func (s *Server) seedDemo(ctx context.Context) (tokenSecret, orgSlug string, err error) {
	org, err := s.tenancy.InstanceOrg(ctx)
	if err != nil {
		return "", "", err
	}
	p := access.Principal{OrgID: org.ID, OrgSlug: org.Slug, Instance: true, Role: access.RoleAdmin, Actor: access.System("demo")}
	for _, req := range demoProducts {
		if _, err := s.inventory.CreateProduct(ctx, p, req); err != nil && !problem.Is(err, problem.KindConflict) {
			return "", "", fmt.Errorf("demo product %s: %w", req.Slug, err)
		}
	}
	tok, err := s.identity.CreateEnrollmentToken(ctx, p, identity.CreateEnrollmentTokenRequest{
		Name: "demo fleet", MaxUses: max(s.cfg.Demo, 1), ExpiresIn: "1h"})
	if err != nil {
		return "", "", err
	}
	return tok.Secret, org.Slug, nil
}
