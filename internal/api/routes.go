package api

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/steward-iot/steward/internal/audit"
	"github.com/steward-iot/steward/internal/openapi"
	"github.com/steward-iot/steward/internal/problem"
	"github.com/steward-iot/steward/internal/tenancy"
)

var (
	pageParams = []openapi.Param{
		{Name: "limit", In: "query", Description: "items per page, 1-500 (default 100)", Schema: 0},
		{Name: "cursor", In: "query", Description: "next_cursor of the previous page"},
	}
	idemParam = openapi.Param{Name: "Idempotency-Key", In: "header",
		Description: "makes the create safe to retry: the same key and body within 24h returns the first response (secrets omitted)"}
	readErrors   = []int{400, 401, 403, 404}
	createErrors = []int{400, 401, 403, 404, 409, 413, 415, 422}
	changeErrors = []int{401, 403, 404, 409}
)

// routes is the one list of every endpoint. The OpenAPI document, the
// ServeMux and the access tests all read it.
func (s *Server) routes() []route {
	return slices.Concat(s.adminRoutes(), s.deviceRoutes(), s.releaseRoutes(), s.vulnRoutes(), s.rolloutRoutes(), s.suitRoutes(), s.notifyRoutes(), s.reportRoutes(), s.advisoryRoutes(), s.tufRoutes())
}

func (s *Server) adminRoutes() []route {
	return []route{
		{op: openapi.Operation{Method: "GET", Path: "/healthz", ID: "health", Summary: "Liveness: the process serves HTTP.",
			Tags: []string{"operations"}, Response: Health{}, Public: true}, public: s.health},
		{op: openapi.Operation{Method: "GET", Path: "/readyz", ID: "ready", Summary: "Readiness: the database and blob store answer.",
			Tags: []string{"operations"}, Response: Health{}, Public: true, Errors: []int{503}}, public: s.readyz},
		{op: openapi.Operation{Method: "GET", Path: "/api/v1/openapi.json", ID: "openapi", Summary: "This API's OpenAPI 3.1 document.",
			Tags: []string{"operations"}, Response: map[string]any{}, Public: true}, public: s.serveOpenAPI},

		{op: openapi.Operation{Method: "GET", Path: "/api/v1/whoami", ID: "whoami", Summary: "The caller's organization and token.",
			Tags: []string{"tokens"}, Response: Whoami{}, Errors: []int{401}}, handle: s.whoami},

		{op: openapi.Operation{Method: "GET", Path: "/api/v1/orgs", ID: "listOrgs",
			Summary: "Organizations the caller may see: its own, or all for instance admins.",
			Tags:    []string{"orgs"}, Params: pageParams, Response: Page[tenancy.Org]{}, Errors: readErrors}, handle: s.listOrgs},
		{op: openapi.Operation{Method: "POST", Path: "/api/v1/orgs", ID: "createOrg",
			Summary: "Create an organization with an initial admin token (instance admins only).",
			Tags:    []string{"orgs"}, Params: []openapi.Param{idemParam}, Request: tenancy.CreateOrgRequest{},
			Response: tenancy.CreatedOrg{}, Status: http.StatusCreated, Errors: createErrors}, handle: s.createOrg, idempotent: true},
		{op: openapi.Operation{Method: "GET", Path: "/api/v1/orgs/{org}", ID: "getOrg", Summary: "One organization.",
			Tags: []string{"orgs"}, Response: tenancy.Org{}, Errors: readErrors}, handle: s.getOrg, crossOrg: true},

		{op: openapi.Operation{Method: "GET", Path: "/api/v1/orgs/{org}/users", ID: "listUsers", Summary: "People in the organization.",
			Tags: []string{"users"}, Params: pageParams, Response: Page[tenancy.User]{}, Errors: readErrors}, handle: s.listUsers},
		{op: openapi.Operation{Method: "POST", Path: "/api/v1/orgs/{org}/users", ID: "createUser", Summary: "Add a person with a role.",
			Tags: []string{"users"}, Params: []openapi.Param{idemParam}, Request: tenancy.CreateUserRequest{},
			Response: tenancy.User{}, Status: http.StatusCreated, Errors: createErrors}, handle: s.createUser, idempotent: true},
		{op: openapi.Operation{Method: "GET", Path: "/api/v1/orgs/{org}/users/{id}", ID: "getUser", Summary: "One person.",
			Tags: []string{"users"}, Response: tenancy.User{}, Errors: readErrors}, handle: s.getUser},
		{op: openapi.Operation{Method: "POST", Path: "/api/v1/orgs/{org}/users/{id}/disable", ID: "disableUser",
			Summary: "Disable a person; their tokens stop working at once.",
			Tags:    []string{"users"}, Response: tenancy.User{}, Errors: changeErrors}, handle: s.disableUser},

		{op: openapi.Operation{Method: "GET", Path: "/api/v1/orgs/{org}/tokens", ID: "listTokens", Summary: "API tokens (never their secrets).",
			Tags: []string{"tokens"}, Params: pageParams, Response: Page[tenancy.Token]{}, Errors: readErrors}, handle: s.listTokens},
		{op: openapi.Operation{Method: "POST", Path: "/api/v1/orgs/{org}/tokens", ID: "createToken",
			Summary: "Create an API token; the secret is in this response only.",
			Tags:    []string{"tokens"}, Params: []openapi.Param{idemParam}, Request: tenancy.CreateTokenRequest{},
			Response: tenancy.CreatedToken{}, Status: http.StatusCreated, Errors: createErrors}, handle: s.createToken, idempotent: true},
		{op: openapi.Operation{Method: "GET", Path: "/api/v1/orgs/{org}/tokens/{id}", ID: "getToken", Summary: "One API token.",
			Tags: []string{"tokens"}, Response: tenancy.Token{}, Errors: readErrors}, handle: s.getToken},
		{op: openapi.Operation{Method: "DELETE", Path: "/api/v1/orgs/{org}/tokens/{id}", ID: "revokeToken",
			Summary: "Revoke an API token; it fails from the next request on. Any token may revoke itself.",
			Tags:    []string{"tokens"}, Response: tenancy.Token{}, Errors: changeErrors}, handle: s.revokeToken},

		{op: openapi.Operation{Method: "GET", Path: "/api/v1/orgs/{org}/audit", ID: "listAudit",
			Summary: "The organization's audit log, newest first.", Tags: []string{"audit"},
			Params: append([]openapi.Param{{Name: "action", In: "query",
				Description: "only this action, or actions with this prefix when it ends in '.' (e.g. token.)"}}, pageParams...),
			Response: Page[audit.Event]{}, Errors: readErrors}, handle: s.listAudit},
	}
}

// Health is the body of /healthz and /readyz.
type Health struct {
	Status  string `json:"status" enum:"ok,unavailable"`
	Version string `json:"version"`
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, "application/json", http.StatusOK, Health{Status: "ok", Version: s.version})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.ready(ctx); err != nil {
			s.log.WarnContext(r.Context(), "not ready", "err", err)
			s.writeError(w, r, &statusError{http.StatusServiceUnavailable, "not ready: a backing store does not answer"})
			return
		}
	}
	writeJSON(w, "application/json", http.StatusOK, Health{Status: "ok", Version: s.version})
}

func (s *Server) serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(s.openapi)
}

// Whoami is the caller's identity.
type Whoami struct {
	Org   tenancy.Org   `json:"org"`
	Token tenancy.Token `json:"token"`
}

func (s *Server) whoami(c *call) (any, error) {
	org, tok, err := s.tenancy.Whoami(c.r.Context(), c.p)
	return Whoami{Org: org, Token: tok}, err
}

func (s *Server) listOrgs(c *call) (any, error) {
	pq, err := c.page()
	if err != nil {
		return nil, err
	}
	pg, err := s.tenancy.ListOrgs(c.r.Context(), c.p, pq.after, pq.limit)
	return newPage(pg.Items, pg.Next), err
}

func (s *Server) createOrg(c *call) (any, error) {
	var req tenancy.CreateOrgRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	return s.tenancy.CreateOrg(c.r.Context(), c.p, req)
}

func (s *Server) getOrg(c *call) (any, error) {
	return s.tenancy.GetOrg(c.r.Context(), c.p, c.r.PathValue("org"))
}

func (s *Server) listUsers(c *call) (any, error) {
	pq, err := c.page()
	if err != nil {
		return nil, err
	}
	pg, err := s.tenancy.ListUsers(c.r.Context(), c.p, pq.after, pq.limit)
	return newPage(pg.Items, pg.Next), err
}

func (s *Server) createUser(c *call) (any, error) {
	var req tenancy.CreateUserRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	return s.tenancy.CreateUser(c.r.Context(), c.p, req)
}

func (s *Server) getUser(c *call) (any, error) {
	return s.tenancy.GetUser(c.r.Context(), c.p, c.r.PathValue("id"))
}

func (s *Server) disableUser(c *call) (any, error) {
	return s.tenancy.DisableUser(c.r.Context(), c.p, c.r.PathValue("id"))
}

func (s *Server) listTokens(c *call) (any, error) {
	pq, err := c.page()
	if err != nil {
		return nil, err
	}
	pg, err := s.tenancy.ListTokens(c.r.Context(), c.p, pq.after, pq.limit)
	return newPage(pg.Items, pg.Next), err
}

func (s *Server) createToken(c *call) (any, error) {
	var req tenancy.CreateTokenRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	return s.tenancy.CreateToken(c.r.Context(), c.p, req)
}

func (s *Server) getToken(c *call) (any, error) {
	return s.tenancy.GetToken(c.r.Context(), c.p, c.r.PathValue("id"))
}

func (s *Server) revokeToken(c *call) (any, error) {
	return s.tenancy.RevokeToken(c.r.Context(), c.p, c.r.PathValue("id"))
}

func (s *Server) listAudit(c *call) (any, error) {
	pq, err := c.page()
	if err != nil {
		return nil, err
	}
	q := audit.Query{Limit: pq.limit, Action: c.r.URL.Query().Get("action")}
	if pq.after != "" {
		if q.BeforeSeq, err = strconv.ParseInt(pq.after, 10, 64); err != nil || q.BeforeSeq < 1 {
			return nil, problem.InvalidField("cursor", "not a cursor this server issued")
		}
	}
	events, next, err := s.audit.List(c.r.Context(), c.p, q)
	if err != nil {
		return nil, err
	}
	cursor := ""
	if next > 0 {
		cursor = strconv.FormatInt(next, 10)
	}
	return newPage(events, cursor), nil
}
