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
	tags := []string{"vulnerabilities"}
	write := []int{400, 401, 403, 404, 409}
	return []route{
		{op: openapi.Operation{Method: "POST", Path: "/api/v1/orgs/{org}/vulnerabilities/osv", ID: "importOSV",
			Summary: "Import or update a vulnerability from an OSV JSON record (the body). 201 when new, 200 when updated. " +
				"A public record starts at triaging; with ?reported=true (a report not yet public) it starts at received with its acknowledgement clock running.",
			Params: []openapi.Param{{Name: "reported", In: "query", Description: "true: the record describes a report received, not a published advisory"}},
			Tags:   []string{"vulnerabilities"}, Request: map[string]any{}, Response: vuln.Vulnerability{}, Status: http.StatusCreated,
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

		{op: openapi.Operation{Method: "GET", Path: "/api/v1/orgs/{org}/vulnerabilities/worklist", ID: "vulnerabilityWorklist",
			Summary: "Open vulnerabilities in the order to work on them: priority class, then exploited first, then the cheaper fix to deploy, " +
				"then CVSS (deployment cost never moves one across classes).",
			Tags: tags, Response: []vuln.Vulnerability{}, Errors: readErrors}, handle: s.vulnWorklist},
		{op: openapi.Operation{Method: "POST", Path: "/api/v1/orgs/{org}/vulnerabilities/{id}/transition", ID: "transitionVulnerability",
			Summary: "Move a vulnerability to another ISO/IEC 30111 stage (received → acknowledged → triaging → confirmed | rejected | duplicate → " +
				"remediation → fix-released → disclosed → closed).",
			Tags: tags, Request: vuln.TransitionRequest{}, Response: vuln.Vulnerability{}, Errors: write}, handle: s.transitionVuln},
		{op: openapi.Operation{Method: "PUT", Path: "/api/v1/orgs/{org}/vulnerabilities/{id}/ownership", ID: "setVulnerabilityOwnership",
			Summary: "Set the owner, the deputy and the escalation chain (people who may triage, in order).",
			Tags:    tags, Request: vuln.OwnershipRequest{}, Response: vuln.Vulnerability{}, Errors: write}, handle: s.setVulnOwnership},
		{op: openapi.Operation{Method: "POST", Path: "/api/v1/orgs/{org}/vulnerabilities/{id}/assessment", ID: "assessVulnerability",
			Summary: "Record CVSS vectors (scored), SSVC deployer inputs (→ priority), known exploitation and the cost of deploying the fix; " +
				"the priority sets the SLA clocks.",
			Tags: tags, Request: vuln.AssessRequest{}, Response: vuln.Vulnerability{}, Errors: write}, handle: s.assessVuln},
		{op: openapi.Operation{Method: "POST", Path: "/api/v1/orgs/{org}/vulnerabilities/{id}/risk-acceptance", ID: "acceptVulnerabilityRisk",
			Summary: "Accept the risk of a vulnerability in remediation, with a named approver and an expiry; it returns to remediation when the acceptance expires.",
			Tags:    tags, Request: vuln.AcceptRiskRequest{}, Response: vuln.Vulnerability{}, Errors: write}, handle: s.acceptVulnRisk},
		{op: openapi.Operation{Method: "POST", Path: "/api/v1/orgs/{org}/vulnerabilities/{id}/risk-acceptance/revoke", ID: "revokeVulnerabilityRisk",
			Summary: "End a risk acceptance early; the vulnerability returns to remediation.",
			Tags:    tags, Request: vuln.RevokeRiskRequest{}, Response: vuln.Vulnerability{}, Errors: write}, handle: s.revokeVulnRisk},
		{op: openapi.Operation{Method: "POST", Path: "/api/v1/orgs/{org}/vulnerabilities/{id}/cra-reports", ID: "submitCRAReport",
			Summary: "Record that an EU CRA Art. 14 report (early warning, notification, final report) was submitted.",
			Tags:    tags, Request: vuln.CRASubmission{}, Response: vuln.Vulnerability{}, Errors: write}, handle: s.submitCRAReport},
	}
}

func (s *Server) transitionVuln(c *call) (any, error) {
	var req vuln.TransitionRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	return s.vuln.Transition(c.r.Context(), c.p, c.r.PathValue("id"), req)
}

func (s *Server) setVulnOwnership(c *call) (any, error) {
	var req vuln.OwnershipRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	return s.vuln.SetOwnership(c.r.Context(), c.p, c.r.PathValue("id"), req)
}

func (s *Server) assessVuln(c *call) (any, error) {
	var req vuln.AssessRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	return s.vuln.Assess(c.r.Context(), c.p, c.r.PathValue("id"), req)
}

func (s *Server) acceptVulnRisk(c *call) (any, error) {
	var req vuln.AcceptRiskRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	return s.vuln.AcceptRisk(c.r.Context(), c.p, c.r.PathValue("id"), req)
}

func (s *Server) revokeVulnRisk(c *call) (any, error) {
	var req vuln.RevokeRiskRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	return s.vuln.RevokeRiskAcceptance(c.r.Context(), c.p, c.r.PathValue("id"), req)
}

func (s *Server) submitCRAReport(c *call) (any, error) {
	var req vuln.CRASubmission
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	return s.vuln.SubmitCRAReport(c.r.Context(), c.p, c.r.PathValue("id"), req)
}

func (s *Server) importOSV(c *call) (any, error) {
	if len(c.body) == 0 {
		return nil, problem.Invalid("the request body is empty; send an OSV JSON record")
	}
	importer := s.vuln.ImportOSV
	switch c.r.URL.Query().Get("reported") {
	case "", "false":
	case "true":
		importer = s.vuln.ReceiveOSV
	default:
		return nil, problem.InvalidField("reported", "must be true or false")
	}
	v, created, err := importer(c.r.Context(), c.p, c.body)
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

func (s *Server) vulnWorklist(c *call) (any, error) {
	list, err := s.vuln.Worklist(c.r.Context(), c.p)
	if list == nil {
		list = []vuln.Vulnerability{}
	}
	return list, err
}
