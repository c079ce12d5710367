package vuln

import (
	"context"

	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/vuln/scoring"
)

// MaxWorklist bounds the answer; every open vulnerability is ordered first.
const MaxWorklist = 1000

// open stages still need work from the team.
var openStages = []Stage{Received, Acknowledged, Triaging, Confirmed, Remediation}

// Worklist returns the open vulnerabilities in the order to work on them:
// by priority class, and within a class exploited first, then cheaper to
// deploy, then higher CVSS (scoring.Order). The cost of deploying a fix
// never moves a vulnerability across classes.
func (s *Service) Worklist(ctx context.Context, p access.Principal) ([]Vulnerability, error) {
	if err := p.Require(access.VulnRead); err != nil {
		return nil, err
	}
	var open []Vulnerability
	err := s.store.Read(ctx, func(tx Tx) error {
		after := ""
		for {
			page, err := tx.ListVulnerabilities(ctx, p.OrgID, after, 500)
			if err != nil {
				return err
			}
			for _, v := range page {
				for _, st := range openStages {
					if v.Stage == st {
						v.view(s.clock.Now())
						v.OSV = nil // not needed here; keeps a long backlog small
						open = append(open, v)
					}
				}
			}
			if len(page) < 500 {
				return nil
			}
			after = page[len(page)-1].ID
		}
	})
	if err != nil {
		return nil, err
	}
	items := make([]scoring.Item, len(open))
	byID := make(map[string]Vulnerability, len(open))
	for i, v := range open {
		it := scoring.Item{ID: v.ID, Priority: v.Priority, KnownExploited: v.KnownExploited}
		if a := v.Assessment; a != nil {
			it.Cost = a.Cost
			for _, c := range a.CVSS {
				it.CVSSScore = max(it.CVSSScore, c.BaseScore)
			}
		}
		if it.Priority == "" {
			it.Priority = s.policy.DefaultClass // unassessed work still has clocks running
		}
		items[i], byID[v.ID] = it, v
	}
	scoring.Order(items)
	items = items[:min(len(items), MaxWorklist)] // cut after ordering: the most urgent stay
	out := make([]Vulnerability, len(items))
	for i, it := range items {
		out[i] = byID[it.ID]
	}
	return out, nil
}
