package api

import (
	"net/http"

	"github.com/steward-iot/steward/internal/openapi"
	"github.com/steward-iot/steward/internal/trust"
)

// tufRoutes are the key ceremony endpoints of the organization's TUF image
// repository; the repository itself is served publicly at /tuf/{org}/.
func (s *Server) tufRoutes() []route {
	if s.trust == nil {
		return nil
	}
	roleParam := []openapi.Param{{Name: "role", In: "path", Required: true, Description: "root or targets"}}
	return []route{
		{op: openapi.Operation{Method: "GET", Path: "/api/v1/orgs/{org}/tuf", ID: "tufStatus",
			Summary: "The organization's TUF repository: per role its keys (online or offline), threshold, published and staged versions, " +
				"missing signatures, and warnings (e.g. root or targets keys online).",
			Tags: []string{"tuf"}, Response: trust.RepoStatus{}, Errors: readErrors}, handle: s.tufStatus},
		{op: openapi.Operation{Method: "POST", Path: "/api/v1/orgs/{org}/tuf", ID: "initTUF",
			Summary: "Create the repository with offline root and targets keys (public keys only); the server generates and keeps the snapshot " +
				"and timestamp keys. Root and targets version 1 then await offline signatures. Refused once the repository has published anything.",
			Tags: []string{"tuf"}, Params: []openapi.Param{idemParam}, Request: trust.InitRequest{}, Response: trust.RepoStatus{},
			Status: http.StatusCreated, Errors: createErrors}, handle: s.initTUF, idempotent: true},
		{op: openapi.Operation{Method: "GET", Path: "/api/v1/orgs/{org}/tuf/{role}/unsigned", ID: "tufUnsigned",
			Summary: "The staged root or targets version for offline signing ('steward keys sign'), with the keys that may sign it.",
			Tags:    []string{"tuf"}, Params: roleParam, Response: trust.UnsignedMetadata{}, Errors: readErrors}, handle: s.tufUnsigned},
		{op: openapi.Operation{Method: "POST", Path: "/api/v1/orgs/{org}/tuf/{role}/signatures", ID: "addTUFSignature",
			Summary: "Add an offline signature to the staged root or targets version; it is published once its thresholds are met. " +
				"Signatures for another version or over other bytes are refused.",
			Tags: []string{"tuf"}, Params: roleParam, Request: trust.OfflineSignature{}, Response: trust.SigningState{},
			Errors: []int{400, 401, 403, 404, 409, 413, 415}}, handle: s.addTUFSignature},
		{op: openapi.Operation{Method: "POST", Path: "/api/v1/orgs/{org}/tuf/rotate-root", ID: "rotateTUFRoot",
			Summary: "Stage the next root version with new root keys and threshold; it needs a threshold of the current root keys and one of the new keys.",
			Tags:    []string{"tuf"}, Request: trust.RotateRootRequest{}, Response: trust.SigningState{},
			Errors: []int{400, 401, 403, 404, 409, 413, 415}}, handle: s.rotateTUFRoot},
		{op: openapi.Operation{Method: "POST", Path: "/api/v1/orgs/{org}/tuf/renew-targets", ID: "renewTUFTargets",
			Summary: "Stage a targets version with the same targets and a renewed expiry, for offline targets keys to sign before the current one expires.",
			Tags:    []string{"tuf"}, Response: trust.SigningState{}, Errors: changeErrors}, handle: s.renewTUFTargets},
	}
}

func (s *Server) tufStatus(c *call) (any, error) {
	return s.trust.Status(c.r.Context(), c.p)
}

func (s *Server) initTUF(c *call) (any, error) {
	var req trust.InitRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	return s.trust.Init(c.r.Context(), c.p, req)
}

func (s *Server) tufUnsigned(c *call) (any, error) {
	return s.trust.Unsigned(c.r.Context(), c.p, trust.Role(c.r.PathValue("role")))
}

func (s *Server) addTUFSignature(c *call) (any, error) {
	var sig trust.OfflineSignature
	if err := c.decode(&sig); err != nil {
		return nil, err
	}
	return s.trust.AddSignature(c.r.Context(), c.p, trust.Role(c.r.PathValue("role")), sig)
}

func (s *Server) rotateTUFRoot(c *call) (any, error) {
	var req trust.RotateRootRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	return s.trust.RotateRoot(c.r.Context(), c.p, req)
}

func (s *Server) renewTUFTargets(c *call) (any, error) {
	return s.trust.RenewTargets(c.r.Context(), c.p)
}
