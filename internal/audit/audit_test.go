package audit_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/audit"
)

func TestSealChainsAndCoversEveryField(t *testing.T) {
	e := audit.Event{OrgID: "o", ID: "e1", At: time.Date(2026, 1, 2, 3, 4, 5, 6789, time.UTC),
		Actor: access.Actor{Kind: access.ActorToken, ID: "t1", Name: "ci"}, Action: "token.create",
		TargetType: "token", TargetID: "t2", Details: json.RawMessage(`{ "b": 1,  "a": [1, 2] }`)}
	prev := audit.Head{OrgID: "o", Seq: 4, Hash: "abc"}
	if err := audit.Seal(&e, prev); err != nil {
		t.Fatal(err)
	}
	if e.Seq != 5 || e.PrevHash != "abc" || string(e.Details) != `{"b":1,"a":[1,2]}` || e.At.Nanosecond() != 6000 {
		t.Fatalf("sealed event: %+v", e)
	}
	if audit.ComputeHash(e) != e.Hash || len(e.Hash) != 64 {
		t.Fatal("hash does not recompute")
	}
	edits := map[string]func(*audit.Event){
		"org":      func(e *audit.Event) { e.OrgID = "p" },
		"seq":      func(e *audit.Event) { e.Seq++ },
		"id":       func(e *audit.Event) { e.ID = "e2" },
		"time":     func(e *audit.Event) { e.At = e.At.Add(time.Microsecond) },
		"actor":    func(e *audit.Event) { e.Actor.ID = "mallory" },
		"kind":     func(e *audit.Event) { e.Actor.Kind = access.ActorSystem },
		"name":     func(e *audit.Event) { e.Actor.Name = "x" },
		"action":   func(e *audit.Event) { e.Action = "token.revoke" },
		"target":   func(e *audit.Event) { e.TargetID = "t3" },
		"type":     func(e *audit.Event) { e.TargetType = "user" },
		"details":  func(e *audit.Event) { e.Details = json.RawMessage(`{"b":2,"a":[1,2]}`) },
		"prevhash": func(e *audit.Event) { e.PrevHash = "abd" },
	}
	for name, edit := range edits {
		c := e
		edit(&c)
		if audit.ComputeHash(c) == e.Hash {
			t.Errorf("editing %s does not change the hash", name)
		}
	}
	bad := audit.Event{Details: json.RawMessage(`{nope`)}
	if err := audit.Seal(&bad, audit.Head{}); err == nil {
		t.Fatal("Seal accepted invalid JSON details")
	}
}
