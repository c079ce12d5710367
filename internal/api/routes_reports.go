package api

import (
	"github.com/steward-iot/steward/internal/disclosure"
	"github.com/steward-iot/steward/internal/openapi"
)

// reportRoutes are the team's side of inbound vulnerability reports; the
// reporter's side (security.txt, the form, the public report API) is
// mounted from package disclosure.
func (s *Server) reportRoutes() []route {
	if s.reports == nil {
		return nil
	}
	const base = "/api/v1/orgs/{org}/reports"
	tags := []string{"reports"}
	write := []int{400, 401, 403, 404, 409}
	return []route{
		{op: openapi.Operation{Method: "GET", Path: base, ID: "listReports", Summary: "Inbound vulnerability reports, oldest first.",
			Tags: tags, Params: append([]openapi.Param{{Name: "stage", In: "query", Description: "only reports in this stage"}}, pageParams...),
			Response: Page[disclosure.Report]{}, Errors: readErrors}, handle: s.listReports},
		{op: openapi.Operation{Method: "GET", Path: base + "/{id}", ID: "getReport",
			Summary: "One report with its messages (internal notes included) and linked vulnerabilities.",
			Tags:    tags, Response: disclosure.ReportDetail{}, Errors: readErrors}, handle: s.getReport},
		{op: openapi.Operation{Method: "POST", Path: base + "/{id}/acknowledge", ID: "acknowledgeReport",
			Summary: "Acknowledge a report to its reporter (stops the acknowledgement clock).",
			Tags:    tags, Request: disclosure.AcknowledgeRequest{}, Response: disclosure.Report{}, Errors: write}, handle: s.acknowledgeReport},
		{op: openapi.Operation{Method: "POST", Path: base + "/{id}/messages", ID: "replyReport",
			Summary: "Write to the reporter, or add an internal note (internal: true).",
			Tags:    tags, Request: disclosure.ReplyRequest{}, Response: disclosure.Message{}, Errors: write}, handle: s.replyReport},
		{op: openapi.Operation{Method: "POST", Path: base + "/{id}/stage", ID: "setReportStage",
			Summary: "Move a report to another stage (rejected and duplicate need a reason).",
			Tags:    tags, Request: disclosure.StageRequest{}, Response: disclosure.Report{}, Errors: write}, handle: s.setReportStage},
		{op: openapi.Operation{Method: "POST", Path: base + "/{id}/vulnerabilities", ID: "linkReportVulnerability",
			Summary: "Link a report to the vulnerability it describes.", Tags: tags, Request: disclosure.LinkRequest{},
			Response: disclosure.Link{}, Errors: write}, handle: s.linkReportVulnerability},
		{op: openapi.Operation{Method: "DELETE", Path: base + "/{id}/vulnerabilities/{vuln}", ID: "unlinkReportVulnerability",
			Summary: "Remove a report's link to a vulnerability.", Tags: tags, Response: nil, Status: 204,
			Errors: readErrors}, handle: s.unlinkReportVulnerability},
	}
}

func (s *Server) listReports(c *call) (any, error) {
	pq, err := c.page()
	if err != nil {
		return nil, err
	}
	items, next, err := s.reports.ListReports(c.r.Context(), c.p, disclosure.ListQuery{
		Stage: disclosure.Stage(c.r.URL.Query().Get("stage")), After: pq.after, Limit: pq.limit})
	return newPage(items, next), err
}

func (s *Server) getReport(c *call) (any, error) {
	return s.reports.GetReport(c.r.Context(), c.p, c.r.PathValue("id"))
}

func (s *Server) acknowledgeReport(c *call) (any, error) {
	var req disclosure.AcknowledgeRequest
	if len(c.body) > 0 { // the message is optional
		if err := c.decode(&req); err != nil {
			return nil, err
		}
	}
	return s.reports.Acknowledge(c.r.Context(), c.p, c.r.PathValue("id"), req)
}

func (s *Server) replyReport(c *call) (any, error) {
	var req disclosure.ReplyRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	return s.reports.Reply(c.r.Context(), c.p, c.r.PathValue("id"), req)
}

func (s *Server) setReportStage(c *call) (any, error) {
	var req disclosure.StageRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	return s.reports.SetStage(c.r.Context(), c.p, c.r.PathValue("id"), req)
}

func (s *Server) linkReportVulnerability(c *call) (any, error) {
	var req disclosure.LinkRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	return s.reports.LinkVulnerability(c.r.Context(), c.p, c.r.PathValue("id"), req.VulnerabilityID)
}

func (s *Server) unlinkReportVulnerability(c *call) (any, error) {
	return nil, s.reports.UnlinkVulnerability(c.r.Context(), c.p, c.r.PathValue("id"), c.r.PathValue("vuln"))
}
