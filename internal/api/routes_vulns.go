package api

import (
	"net/http"

	"github.com/steward-iot/steward/internal/openapi"
	"github.com/steward-iot/steward/internal/problem"
	"github.com/steward-iot/steward/internal/vuln"
)

func (s *Server) vulnRoutes() []route {
	if s.vuln == nil {
		return nil
	}
	return []route{
		{op: openapi.Operation{Method: "POST", Path: "/api/v1/orgs/{org}/vulnerabilities/osv", ID: "importOSV",
			Summary: "Import or update a vulnerability from an OSV JSON record (the body). 201 when new, 200 when updated.",
			Tags:    []string{"vulnerabilities"}, Request: map[string]any{}, Response: vuln.Vulnerability{}, Status: http.StatusCreated,
			Errors: []int{400, 401, 403, 404, 413, 415}}, handle: s.importOSV},
		{op: openapi.Operation{Method: "GET", Path: "/api/v1/orgs/{org}/vulnerabilities", ID: "listVulnerabilities",
			Summary: "Tracked vulnerabilities.", Tags: []string{"vulnerabilities"}, Params: pageParams,
			Response: Page[vuln.Vulnerability]{}, Errors: readErrors}, handle: s.listVulns},
		{op: openapi.Operation{Method: "GET", Path: "/api/v1/orgs/{org}/vulnerabilities/{id}", ID: "getVulnerability",
			Summary: "One vulnerability, by id or record id (e.g. DLA-3008-1).", Tags: []string{"vulnerabilities"},
			Response: vuln.Vulnerability{}, Errors: readErrors}, handle: s.getVuln},
		{op: openapi.Operation{Method: "GET", Path: "/api/v1/orgs/{org}/vulnerabilities/{id}/affected", ID: "vulnerabilityAffected",
			Summary: "Releases (from their SBOMs) and active devices (from their reports) the vulnerability affects, with fixed versions.",
			Tags:    []string{"vulnerabilities"}, Response: vuln.Affected{}, Errors: readErrors}, handle: s.vulnAffected},
	}
}

func (s *Server) importOSV(c *call) (any, error) {
	if len(c.body) == 0 {
		return nil, problem.Invalid("the request body is empty; send an OSV JSON record")
	}
	v, created, err := s.vuln.ImportOSV(c.r.Context(), c.p, c.body)
	if err != nil || created {
		return v, err
	}
	return stream(func(w http.ResponseWriter) { writeJSON(w, "application/json", http.StatusOK, v) }), nil
}

func (s *Server) listVulns(c *call) (any, error) {
	pq, err := c.page()
	if err != nil {
		return nil, err
	}
	items, next, err := s.vuln.List(c.r.Context(), c.p, pq.after, pq.limit)
	return newPage(items, next), err
}

func (s *Server) getVuln(c *call) (any, error) {
	return s.vuln.Get(c.r.Context(), c.p, c.r.PathValue("id"))
}

func (s *Server) vulnAffected(c *call) (any, error) {
	return s.vuln.Affected(c.r.Context(), c.p, c.r.PathValue("id"))
}
