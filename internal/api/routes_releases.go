package api

import (
	"net/http"

	"github.com/steward-iot/steward/internal/openapi"
	"github.com/steward-iot/steward/internal/release"
)

func (s *Server) releaseRoutes() []route {
	if s.release == nil {
		return nil
	}
	return []route{
		{op: openapi.Operation{Method: "POST", Path: "/api/v1/orgs/{org}/artifacts", ID: "uploadArtifact",
			Summary: "Upload an artifact: the raw bytes as the body (application/octet-stream), streamed to the content-addressed store. " +
				"Uploading the same bytes again returns the existing artifact (200).",
			Tags: []string{"releases"}, Params: []openapi.Param{
				{Name: "name", In: "query", Required: true, Description: "file name, e.g. gw-100-2.4.0.img"},
				{Name: "sha256", In: "query", Description: "expected SHA-256 (hex); a mismatch keeps nothing"}},
			Response: release.Artifact{}, Status: http.StatusCreated, Errors: []int{400, 401, 403, 404, 413}}, handle: s.uploadArtifact, rawBody: true},
		{op: openapi.Operation{Method: "GET", Path: "/api/v1/orgs/{org}/artifacts", ID: "listArtifacts", Summary: "Uploaded artifacts.",
			Tags: []string{"releases"}, Params: pageParams, Response: Page[release.Artifact]{}, Errors: readErrors}, handle: s.listArtifacts},
		{op: openapi.Operation{Method: "GET", Path: "/api/v1/orgs/{org}/artifacts/{id}", ID: "getArtifact", Summary: "One artifact.",
			Tags: []string{"releases"}, Response: release.Artifact{}, Errors: readErrors}, handle: s.getArtifact},
		{op: openapi.Operation{Method: "GET", Path: "/api/v1/orgs/{org}/artifacts/{id}/content", ID: "downloadArtifact",
			Summary: "The artifact's bytes; honours Range and If-Range (the ETag is the SHA-256) so interrupted downloads resume.",
			Tags:    []string{"releases"}, Response: nil, Status: http.StatusOK, Errors: []int{401, 403, 404, 416}}, handle: s.downloadArtifact},
		{op: openapi.Operation{Method: "POST", Path: "/api/v1/orgs/{org}/releases", ID: "createRelease",
			Summary: "Create a release of a product with the next release counter.", Tags: []string{"releases"},
			Params: []openapi.Param{idemParam}, Request: release.CreateReleaseRequest{}, Response: release.Release{},
			Status: http.StatusCreated, Errors: createErrors}, handle: s.createRelease, idempotent: true},
		{op: openapi.Operation{Method: "GET", Path: "/api/v1/orgs/{org}/releases", ID: "listReleases", Summary: "Releases, newest last.",
			Tags: []string{"releases"}, Params: append([]openapi.Param{{Name: "product", In: "query", Description: "only this product (slug or id)"}}, pageParams...),
			Response: Page[release.Release]{}, Errors: readErrors}, handle: s.listReleases},
		{op: openapi.Operation{Method: "GET", Path: "/api/v1/orgs/{org}/releases/{id}", ID: "getRelease", Summary: "One release with its artifacts.",
			Tags: []string{"releases"}, Response: release.Release{}, Errors: readErrors}, handle: s.getRelease},
		{op: openapi.Operation{Method: "GET", Path: "/api/v1/orgs/{org}/releases/{id}/components", ID: "releaseComponents",
			Summary: "The software components the release's SBOM lists.", Tags: []string{"releases"},
			Response: []release.Component{}, Errors: readErrors}, handle: s.releaseComponents},
	}
}

func (s *Server) uploadArtifact(c *call) (any, error) {
	q := c.r.URL.Query()
	body := http.MaxBytesReader(c.w, c.r.Body, s.release.MaxArtifact()+1)
	a, created, err := s.release.Upload(c.r.Context(), c.p, q.Get("name"), body, q.Get("sha256"))
	if err != nil {
		return nil, err
	}
	if !created {
		return stream(func(w http.ResponseWriter) { writeJSON(w, "application/json", http.StatusOK, a) }), nil
	}
	return a, nil
}

func (s *Server) listArtifacts(c *call) (any, error) {
	pq, err := c.page()
	if err != nil {
		return nil, err
	}
	items, next, err := s.release.ListArtifacts(c.r.Context(), c.p, pq.after, pq.limit)
	return newPage(items, next), err
}

func (s *Server) getArtifact(c *call) (any, error) {
	return s.release.GetArtifact(c.r.Context(), c.p, c.r.PathValue("id"))
}

func (s *Server) downloadArtifact(c *call) (any, error) {
	f, a, err := s.release.OpenArtifact(c.r.Context(), c.p, c.r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	return stream(func(w http.ResponseWriter) {
		defer f.Close()
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("ETag", `"`+a.SHA256+`"`)
		w.Header().Set("Content-Disposition", `attachment; filename="`+a.Name+`"`)
		http.ServeContent(w, c.r, "", a.CreatedAt, f)
	}), nil
}

func (s *Server) createRelease(c *call) (any, error) {
	var req release.CreateReleaseRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	return s.release.CreateRelease(c.r.Context(), c.p, req)
}

func (s *Server) listReleases(c *call) (any, error) {
	pq, err := c.page()
	if err != nil {
		return nil, err
	}
	items, next, err := s.release.ListReleases(c.r.Context(), c.p, c.r.URL.Query().Get("product"), pq.after, pq.limit)
	return newPage(items, next), err
}

func (s *Server) getRelease(c *call) (any, error) {
	return s.release.GetRelease(c.r.Context(), c.p, c.r.PathValue("id"))
}

func (s *Server) releaseComponents(c *call) (any, error) {
	return s.release.Components(c.r.Context(), c.p, c.r.PathValue("id"))
}
