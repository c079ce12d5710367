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
		{op: openapi.Operation{Method: "POST", Path: "/api/v1/orgs/{org}/rollouts", ID: "createRollout",
			Summary: "Start a phased rollout of a release to a group or fleet query (docs/rollouts.md).", Tags: []string{"rollouts"},
			Params: []openapi.Param{idemParam}, Request: rollout.CreateRequest{}, Response: rollout.Rollout{},
			Status: http.StatusCreated, Errors: createErrors}, handle: s.createRollout, idempotent: true},
		{op: openapi.Operation{Method: "GET", Path: "/api/v1/orgs/{org}/rollouts", ID: "listRollouts", Summary: "Rollouts, oldest first.",
			Tags: []string{"rollouts"}, Params: append([]openapi.Param{{Name: "state", In: "query",
				Description: "only rollouts in this state: running, paused, completed, cancelled or aborted"}}, pageParams...),
			Response: Page[rollout.Rollout]{}, Errors: readErrors}, handle: s.listRollouts},
		{op: openapi.Operation{Method: "GET", Path: "/api/v1/orgs/{org}/rollouts/{id}", ID: "getRollout",
			Summary: "A rollout with its live progress: devices by update state, per phase and in all, and the phases entered.",
			Tags:    []string{"rollouts"}, Response: rollout.Progress{}, Errors: readErrors}, handle: s.getRollout},
		{op: openapi.Operation{Method: "POST", Path: "/api/v1/orgs/{org}/rollouts/plan", ID: "planRollout",
			Summary: "What-if for a rollout not yet created (the body create takes): bytes to send (delta or full), radio time, energy and battery share per link class, and the time to reach 95% of the target.",
			Tags:    []string{"rollouts"}, Request: rollout.CreateRequest{}, Response: rollout.Plan{}, Errors: []int{400, 401, 403, 404, 413, 415}},
			handle: s.planRollout},
		{op: openapi.Operation{Method: "GET", Path: "/api/v1/orgs/{org}/rollouts/{id}/plan", ID: "rolloutPlan",
			Summary: "What-if of an existing rollout over its target as it is now.", Tags: []string{"rollouts"},
			Response: rollout.Plan{}, Errors: readErrors}, handle: s.rolloutPlan},
		{op: openapi.Operation{Method: "GET", Path: "/api/v1/orgs/{org}/rollouts/{id}/devices", ID: "rolloutDevices",
			Summary: "The devices a rollout has offered its release to, with their update state.", Tags: []string{"rollouts"},
			Params:   append([]openapi.Param{{Name: "state", In: "query", Description: "only devices in this update state"}}, pageParams...),
			Response: Page[rollout.DeviceUpdate]{}, Errors: readErrors}, handle: s.rolloutDevices},
		{op: openapi.Operation{Method: "POST", Path: "/api/v1/orgs/{org}/rollouts/{id}/pause", ID: "pauseRollout",
			Summary: "Pause a rollout: no device is offered the release any more; devices already told go on.",
			Tags:    []string{"rollouts"}, Response: rollout.Rollout{}, Errors: changeErrors}, handle: s.rolloutAction((*rollout.Service).Pause)},
		{op: openapi.Operation{Method: "POST", Path: "/api/v1/orgs/{org}/rollouts/{id}/resume", ID: "resumeRollout",
			Summary: "Resume a paused rollout; the failures so far no longer count toward its pause thresholds.",
			Tags:    []string{"rollouts"}, Response: rollout.Rollout{}, Errors: changeErrors}, handle: s.rolloutAction((*rollout.Service).Resume)},
		{op: openapi.Operation{Method: "POST", Path: "/api/v1/orgs/{org}/rollouts/{id}/cancel", ID: "cancelRollout",
			Summary: "Cancel a rollout: devices that have not started get nothing; started ones finish or roll back.",
			Tags:    []string{"rollouts"}, Response: rollout.Rollout{}, Errors: changeErrors}, handle: s.rolloutAction((*rollout.Service).Cancel)},
		{op: openapi.Operation{Method: "PUT", Path: "/api/v1/orgs/{org}/groups/{id}/window", ID: "setGroupWindow",
			Summary: "Set a group's maintenance window (cron, duration, time zone); an empty cron removes it.", Tags: []string{"rollouts"},
			Request: rollout.GroupWindow{}, Response: rollout.GroupWindow{}, Errors: []int{400, 401, 403, 404}}, handle: s.setGroupWindow},
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

func (s *Server) createRollout(c *call) (any, error) {
	var req rollout.CreateRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	return s.rollout.Create(c.r.Context(), c.p, req)
}

func (s *Server) listRollouts(c *call) (any, error) {
	pq, err := c.page()
	if err != nil {
		return nil, err
	}
	items, next, err := s.rollout.List(c.r.Context(), c.p, c.r.URL.Query().Get("state"), pq.after, pq.limit)
	return newPage(items, next), err
}

func (s *Server) getRollout(c *call) (any, error) {
	return s.rollout.Show(c.r.Context(), c.p, c.r.PathValue("id"))
}

func (s *Server) rolloutDevices(c *call) (any, error) {
	pq, err := c.page()
	if err != nil {
		return nil, err
	}
	items, next, err := s.rollout.Devices(c.r.Context(), c.p, c.r.PathValue("id"), c.r.URL.Query().Get("state"), pq.after, pq.limit)
	return newPage(items, next), err
}

func (s *Server) planRollout(c *call) (any, error) {
	var req rollout.CreateRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	return s.rollout.PlanNew(c.r.Context(), c.p, req)
}

func (s *Server) rolloutPlan(c *call) (any, error) {
	return s.rollout.PlanOf(c.r.Context(), c.p, c.r.PathValue("id"))
}

func (s *Server) rolloutAction(fn func(*rollout.Service, context.Context, access.Principal, string) (rollout.Rollout, error)) func(*call) (any, error) {
	return func(c *call) (any, error) { return fn(s.rollout, c.r.Context(), c.p, c.r.PathValue("id")) }
}

func (s *Server) setGroupWindow(c *call) (any, error) {
	var req rollout.GroupWindow
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	return s.rollout.SetGroupWindow(c.r.Context(), c.p, c.r.PathValue("id"), req)
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
