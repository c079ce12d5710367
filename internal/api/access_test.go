package api_test

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/store"
	"github.com/steward-iot/steward/internal/store/storetest"
	"github.com/steward-iot/steward/internal/tenancy"
)

const (
	admin    = access.RoleAdmin
	release  = access.RoleReleaseManager
	security = access.RoleSecurityOfficer
	operator = access.RoleOperator
	auditor  = access.RoleAuditor
)

// allowed is written out by hand, not derived from access's table, so a
// change to either one shows up here as a failure to look at.
var allowed = map[string][]access.Role{
	"whoami":      {admin, release, security, operator, auditor},
	"listOrgs":    {admin, release, security, operator, auditor},
	"createOrg":   {}, // instance admins only: checked separately
	"getOrg":      {admin, release, security, operator, auditor},
	"listUsers":   {admin, auditor},
	"createUser":  {admin},
	"getUser":     {admin, auditor},
	"disableUser": {admin},
	"listTokens":  {admin, auditor},
	"createToken": {admin},
	"getToken":    {admin, auditor},
	"revokeToken": {admin},
	"listAudit":   {admin, security, auditor},
}

// victims are fresh objects per case, so state-changing calls have a
// target whose survival can be checked.
type victims struct {
	userID, tokenID string
}

func (e *env) newVictims(slug string, n int) victims {
	e.t.Helper()
	p := e.principal(e.tokens[slug][admin])
	u, err := e.ten.CreateUser(context.Background(), p, tenancy.CreateUserRequest{
		Email: fmt.Sprintf("victim%d@%s.example", n, slug), Name: "Victim", Role: operator})
	if err != nil {
		e.t.Fatal(err)
	}
	tok, err := e.ten.CreateToken(context.Background(), p, tenancy.CreateTokenRequest{Name: "victim", Role: operator})
	if err != nil {
		e.t.Fatal(err)
	}
	return victims{userID: u.ID, tokenID: tok.ID}
}

// pathFor fills a route pattern for org slug and victims v.
func pathFor(pattern, slug string, v victims) string {
	p := strings.ReplaceAll(pattern, "{org}", slug)
	if strings.Contains(p, "/users/") {
		return strings.ReplaceAll(p, "{id}", v.userID)
	}
	return strings.ReplaceAll(p, "{id}", v.tokenID)
}

func bodyFor(opID string, n int) any {
	switch opID {
	case "createOrg":
		return tenancy.CreateOrgRequest{Slug: fmt.Sprintf("new-%d", n), Name: "New"}
	case "createUser":
		return tenancy.CreateUserRequest{Email: fmt.Sprintf("new%d@example.com", n), Name: "New", Role: operator}
	case "createToken":
		return tenancy.CreateTokenRequest{Name: "new", Role: operator}
	}
	return nil
}

// TestAccessMatrix walks every admin endpoint × every role × own and
// foreign organization, and asserts that forbidden calls fail with 403,
// foreign ones with 404, neither changes anything, and no response leaks
// the other tenant's identifiers.
func TestAccessMatrix(t *testing.T) {
	for _, d := range storetest.Dialects(t) {
		t.Run(string(d), func(t *testing.T) { testAccessMatrix(t, d) })
	}
}

func testAccessMatrix(t *testing.T, d store.Dialect) {
	e := newEnv(t, d)
	ops := e.srv.Operations()
	for _, op := range ops {
		if !op.Public {
			if _, ok := allowed[op.ID]; !ok {
				t.Errorf("route %s %s (%s) has no row in the access matrix: add one", op.Method, op.Path, op.ID)
			}
		}
	}
	n := 0
	for _, op := range ops {
		if op.Public {
			continue
		}
		for _, own := range []string{"ops", "acme"} {
			other := map[string]string{"ops": "acme", "acme": "ops"}[own]
			for _, role := range access.Roles {
				n++
				instanceAdmin := own == "ops" && role == admin
				name := fmt.Sprintf("%s/%s/%s", op.ID, own, role)
				t.Run(name, func(t *testing.T) {
					mine, theirs := e.newVictims(own, n), e.newVictims(other, n)
					tok := e.tokens[own][role]
					may := slices.Contains(allowed[op.ID], role) || (op.ID == "createOrg" && instanceAdmin)
					foreignIDs := []string{e.orgs[other].ID, theirs.userID, theirs.tokenID}

					// 1. Own organization, own objects.
					before := e.auditCounts()
					res := e.do(op.Method, pathFor(op.Path, own, mine), tok, bodyFor(op.ID, n))
					if may {
						if res.status/100 != 2 {
							t.Fatalf("%s as %s in own org: status %d, want 2xx: %s", op.ID, role, res.status, res.body)
						}
					} else {
						if res.status != http.StatusForbidden {
							t.Fatalf("%s as %s in own org: status %d, want 403: %s", op.ID, role, res.status, res.body)
						}
						res.problem(t)
						if after := e.auditCounts(); !maps.Equal(before, after) {
							t.Fatalf("forbidden %s changed the audit log: %v → %v", op.ID, before, after)
						}
					}
					// Only instance admins may see other tenants, and only orgs.
					if !(instanceAdmin && (op.ID == "listOrgs" || op.ID == "createOrg")) {
						for _, fid := range foreignIDs {
							if strings.Contains(string(res.body), fid) {
								t.Fatalf("%s as %s@%s leaked %s of %s: %s", op.ID, role, own, fid, other, res.body)
							}
						}
					}

					if !strings.Contains(op.Path, "{org}") {
						return
					}
					// 2. The other organization in the path.
					before = e.auditCounts()
					res = e.do(op.Method, pathFor(op.Path, other, theirs), tok, bodyFor(op.ID, n+10000))
					if op.ID == "getOrg" && instanceAdmin {
						if res.status != http.StatusOK {
							t.Fatalf("instance admin getOrg(%s): %d", other, res.status)
						}
					} else {
						if res.status != http.StatusNotFound {
							t.Fatalf("%s as %s@%s on org %s: status %d, want 404: %s", op.ID, role, own, other, res.status, res.body)
						}
						res.problem(t)
						for _, fid := range foreignIDs {
							if strings.Contains(string(res.body), fid) {
								t.Fatalf("404 for foreign org leaked %s: %s", fid, res.body)
							}
						}
					}
					if after := e.auditCounts(); !maps.Equal(before, after) {
						t.Fatalf("%s on a foreign org changed the audit log: %v → %v", op.ID, before, after)
					}

					// 3. Own org in the path, another tenant's object id.
					if strings.Contains(op.Path, "{id}") {
						before = e.auditCounts()
						res = e.do(op.Method, pathFor(op.Path, own, theirs), tok, nil)
						want := http.StatusNotFound
						if !may {
							want = http.StatusForbidden
						}
						if res.status != want {
							t.Fatalf("%s as %s@%s with %s's object: status %d, want %d: %s", op.ID, role, own, other, res.status, want, res.body)
						}
						if after := e.auditCounts(); !maps.Equal(before, after) {
							t.Fatalf("%s on a foreign object changed the audit log", op.ID)
						}
					}
					// The other tenant's victims are untouched.
					theirAdmin := e.principal(e.tokens[other][admin])
					if u, err := e.ten.GetUser(context.Background(), theirAdmin, theirs.userID); err != nil || u.DisabledAt != nil {
						t.Fatalf("foreign user changed: %+v %v", u, err)
					}
					if tk, err := e.ten.GetToken(context.Background(), theirAdmin, theirs.tokenID); err != nil || tk.RevokedAt != nil {
						t.Fatalf("foreign token changed: %+v %v", tk, err)
					}
				})
			}
		}
	}
}

// TestListOrgsVisibility checks what each caller sees in GET /api/v1/orgs.
func TestListOrgsVisibility(t *testing.T) {
	e := newEnv(t, store.SQLite)
	for _, slug := range []string{"ops", "acme"} {
		for _, role := range access.Roles {
			var page struct{ Items []tenancy.Org }
			res := e.do("GET", "/api/v1/orgs", e.tokens[slug][role], nil)
			res.json(t, &page)
			var got []string
			for _, o := range page.Items {
				got = append(got, o.Slug)
			}
			want := []string{slug}
			if slug == "ops" && role == admin {
				want = []string{"ops", "acme"}
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s@%s sees orgs %v, want %v", role, slug, got, want)
			}
		}
	}
	// An unknown token sees nothing at all.
	if res := e.do("GET", "/api/v1/orgs", "stw_"+strings.Repeat("A", 43), nil); res.status != http.StatusUnauthorized {
		t.Fatalf("unknown token: %d", res.status)
	}
}
