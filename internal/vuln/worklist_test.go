package vuln_test

import (
	"testing"

	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/vuln"
	"github.com/steward-iot/steward/internal/vuln/scoring"
)

// TestWorklistOrder checks the order of open work: priority class first,
// exploited before not within a class, then the cheaper fix to deploy;
// a cheap fix never jumps a class, and closed work is left out.
func TestWorklistOrder(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		assess := func(v vuln.Vulnerability, in scoring.SSVC, exploited bool, cost *scoring.Cost) vuln.Vulnerability {
			t.Helper()
			out, err := e.svc.Assess(e.ctx, e.admin, v.ID, vuln.AssessRequest{SSVC: in, KnownExploited: exploited, Cost: cost})
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
		immediate := scoring.SSVC{Exploitation: "active", Exposure: "open", Automatable: true, HumanImpact: "very-high"}
		scheduled := scoring.SSVC{Exploitation: "none", Exposure: "small", Automatable: false, HumanImpact: "low"}
		cheap, dear := &scoring.Cost{Bytes: 1 << 20, BrickRisk: 0.0001}, &scoring.Cost{Bytes: 200 << 20, BrickRisk: 0.01}

		lowCheap := assess(e.imported(), scheduled, false, cheap)
		topDear := assess(e.imported(), immediate, true, dear)
		topCheap := assess(e.imported(), immediate, true, cheap)
		done := e.move(assess(e.imported(), immediate, true, cheap), vuln.Rejected)
		if lowCheap.Priority == topDear.Priority {
			t.Fatalf("test setup: both %s", lowCheap.Priority)
		}

		list, err := e.svc.Worklist(e.ctx, e.admin)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, v := range list {
			got = append(got, v.ID)
			if v.ID == done.ID {
				t.Fatal("a rejected vulnerability is on the worklist")
			}
		}
		want := []string{topCheap.ID, topDear.ID, lowCheap.ID}
		if len(got) != len(want) {
			t.Fatalf("worklist %v, want %v", got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("worklist position %d: %s, want %s (order %v)", i, got[i], want[i], got)
			}
		}
		if _, err := e.svc.Worklist(e.ctx, access.Principal{OrgID: e.org.ID, Role: "nobody"}); err == nil {
			t.Fatal("a principal without vuln.read read the worklist")
		}
	})
}
