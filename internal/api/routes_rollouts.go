package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/openapi"
	"github.com/steward-iot/steward/internal/problem"
	"github.com/steward-iot/steward/internal/rollout"
	"github.com/steward-iot/steward/internal/trust"
)

// DirectorRoots gives out an organization's director root for device
// provisioning.
type DirectorRoots interface {
	Root(ctx context.Context, orgID string, version int64) ([]byte, error)
}

func (s *Server) rolloutRoutes() []route {
	if s.rollout == nil {
		return nil
	}
	return []route{
		{op: openapi.Operation{Method: "PUT", Path: "/api/v1/orgs/{org}/devices/{id}/assignment", ID: "assignDevice",
			Summary: "Assign the release a device should install (a direct deployment); the device learns it at its next check-in.",
			Tags:    []string{"deployments"}, Request: rollout.AssignRequest{}, Response: rollout.Assignment{},
			Errors: []int{400, 401, 403, 404, 409}}, handle: s.assignDevice},
		{op: openapi.Operation{Method: "GET", Path: "/api/v1/orgs/{org}/devices/{id}/assignment", ID: "getAssignment",
			Summary: "The release assigned to a device.", Tags: []string{"deployments"}, Response: rollout.Assignment{},
			Errors: readErrors}, handle: s.getAssignment},
		{op: openapi.Operation{Method: "DELETE", Path: "/api/v1/orgs/{org}/devices/{id}/assignment", ID: "unassignDevice",
			Summary: "Remove a device's assignment: a device that has not started gets nothing.", Tags: []string{"deployments"},
			Response: nil, Status: http.StatusNoContent, Errors: readErrors}, handle: s.unassignDevice},
		{op: openapi.Operation{Method: "GET", Path: "/api/v1/orgs/{org}/devices/{id}/updates", ID: "deviceUpdateHistory",
			Summary: "A device's update history: the status it reported at each step of each update, oldest first.",
			Tags:    []string{"deployments"}, Params: pageParams, Response: Page[rollout.UpdateEvent]{}, Errors: readErrors},
			handle: s.deviceUpdateHistory},
		{op: openapi.Operation{Method: "GET", Path: "/api/v1/orgs/{org}/director/root", ID: "directorRoot",
			Summary: "A version of the organization's director root (TUF root.json), to provision devices with.",
			Tags:    []string{"deployments"}, Params: []openapi.Param{{Name: "version", In: "query", Description: "root version (default 1)"}},
			Response: map[string]any{}, Errors: readErrors}, handle: s.directorRoot},
	}
}

func (s *Server) assignDevice(c *call) (any, error) {
	var req rollout.AssignRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	return s.rollout.Assign(c.r.Context(), c.p, c.r.PathValue("id"), req)
}

func (s *Server) getAssignment(c *call) (any, error) {
	return s.rollout.Get(c.r.Context(), c.p, c.r.PathValue("id"))
}

func (s *Server) unassignDevice(c *call) (any, error) {
	return nil, s.rollout.Unassign(c.r.Context(), c.p, c.r.PathValue("id"))
}

func (s *Server) deviceUpdateHistory(c *call) (any, error) {
	pq, err := c.page()
	if err != nil {
		return nil, err
	}
	items, next, err := s.rollout.History(c.r.Context(), c.p, c.r.PathValue("id"), pq.after, pq.limit)
	return newPage(items, next), err
}

func (s *Server) directorRoot(c *call) (any, error) {
	if err := c.p.Require(access.ReleaseRead); err != nil {
		return nil, err
	}
	v := int64(1)
	if q := c.r.URL.Query().Get("version"); q != "" {
		n, err := strconv.ParseInt(q, 10, 64)
		if err != nil || n < 1 {
			return nil, problem.InvalidField("version", "version must be a positive integer, not %q", q)
		}
		v = n
	}
	data, err := s.director.Root(c.r.Context(), c.p.OrgID, v)
	if problem.Is(err, problem.KindNotFound) || isTrustNotFound(err) {
		return nil, problem.NotFound("no director root version %d", v)
	}
	if err != nil {
		return nil, err
	}
	return stream(func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(data)
	}), nil
}

func isTrustNotFound(err error) bool { return errors.Is(err, trust.ErrNotFound) }
