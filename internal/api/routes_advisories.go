package api

import (
	"net/http"
	"strconv"

	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/advisory"
	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/openapi"
	"github.com/steward-iot/steward/internal/paging"
	"github.com/steward-iot/steward/internal/problem"
	"github.com/steward-iot/steward/internal/release"
)

func (s *Server) advisoryRoutes() []route {
	if s.advisories == nil {
		return nil
	}
	const base = "/api/v1/orgs/{org}/advisories"
	tags := []string{"advisories"}
	write := []int{400, 401, 403, 404, 409}
	rts := []route{
		{op: openapi.Operation{Method: "POST", Path: base, ID: "createAdvisory",
			Summary: "Create an advisory draft (validated in full: every saved draft can be published as CSAF 2.0).",
			Tags:    tags, Params: []openapi.Param{idemParam}, Request: advisory.Draft{}, Response: advisory.Advisory{},
			Status: http.StatusCreated, Errors: createErrors}, handle: s.createAdvisory, idempotent: true},
		{op: openapi.Operation{Method: "GET", Path: base, ID: "listAdvisories", Summary: "Advisories, drafts and published.",
			Tags: tags, Params: pageParams, Response: Page[advisory.Advisory]{}, Errors: readErrors}, handle: s.listAdvisories},
		{op: openapi.Operation{Method: "GET", Path: base + "/{id}", ID: "getAdvisory",
			Summary: "One advisory, by id or tracking id, with its published versions.",
			Tags:    tags, Response: advisory.Advisory{}, Errors: readErrors}, handle: s.getAdvisory},
		{op: openapi.Operation{Method: "PUT", Path: base + "/{id}", ID: "updateAdvisory",
			Summary: "Replace an advisory's draft; the next publish makes it a new version.",
			Tags:    tags, Request: advisory.Draft{}, Response: advisory.Advisory{}, Errors: write}, handle: s.updateAdvisory},
		{op: openapi.Operation{Method: "POST", Path: base + "/{id}/publish", ID: "publishAdvisory",
			Summary: "Publish the draft as the next version: CSAF security advisory and VEX documents, signed, hashed and distributed; subscribers are notified.",
			Tags:    tags, Request: advisory.PublishRequest{}, Response: advisory.Version{}, Errors: write}, handle: s.publishAdvisory},
		{op: openapi.Operation{Method: "GET", Path: base + "/{id}/csaf", ID: "advisoryDocument",
			Summary: "A CSAF 2.0 document of the advisory: a published version, or version 0 for an unsigned preview of the draft.",
			Tags:    tags, Params: []openapi.Param{
				{Name: "version", In: "query", Description: "version number; 0 previews the draft (default: the latest)"},
				{Name: "profile", In: "query", Description: "advisory (csaf_security_advisory, default) or vex (csaf_vex)"}},
			Response: map[string]any{}, Errors: readErrors}, handle: s.advisoryDocument},
		{op: openapi.Operation{Method: "GET", Path: "/api/v1/orgs/{org}/advisory-keys", ID: "listAdvisoryKeys",
			Summary: "The OpenPGP keys advisories are signed with (retired ones too).", Tags: tags,
			Response: []advisory.SigningKey{}, Errors: readErrors}, handle: s.listAdvisoryKeys},
		{op: openapi.Operation{Method: "POST", Path: "/api/v1/orgs/{org}/advisory-keys", ID: "importAdvisoryKey",
			Summary: "Sign advisories with your own OpenPGP key from now on (armored private key); the current key is retired.",
			Tags:    tags, Request: advisory.ImportKeyRequest{}, Response: advisory.SigningKey{}, Status: http.StatusCreated,
			Errors: createErrors}, handle: s.importAdvisoryKey},
	}
	if s.vuln != nil && s.inventory != nil && s.release != nil {
		rts = append(rts, []route{
			{op: openapi.Operation{Method: "POST", Path: "/api/v1/orgs/{org}/vulnerabilities/{id}/advisory", ID: "draftAdvisory",
				Summary: "Draft an advisory from a vulnerability: its assessment, and product status per release from SBOM matching " +
					"(known affected, first fixed release, not affected, under investigation). Review it, then publish.",
				Tags: tags, Params: []openapi.Param{idemParam}, Response: advisory.Advisory{}, Status: http.StatusCreated,
				Errors: createErrors}, handle: s.draftAdvisory, idempotent: true},
		}...)
	}
	return rts
}

func (s *Server) createAdvisory(c *call) (any, error) {
	var d advisory.Draft
	if err := c.decode(&d); err != nil {
		return nil, err
	}
	return s.advisories.CreateDraft(c.r.Context(), c.p, d)
}

func (s *Server) listAdvisories(c *call) (any, error) {
	pq, err := c.page()
	if err != nil {
		return nil, err
	}
	items, next, err := s.advisories.List(c.r.Context(), c.p, pq.after, pq.limit)
	return newPage(items, next), err
}

func (s *Server) getAdvisory(c *call) (any, error) {
	return s.advisories.Get(c.r.Context(), c.p, c.r.PathValue("id"))
}

func (s *Server) updateAdvisory(c *call) (any, error) {
	var d advisory.Draft
	if err := c.decode(&d); err != nil {
		return nil, err
	}
	return s.advisories.UpdateDraft(c.r.Context(), c.p, c.r.PathValue("id"), d)
}

func (s *Server) publishAdvisory(c *call) (any, error) {
	var req advisory.PublishRequest
	if len(c.body) > 0 {
		if err := c.decode(&req); err != nil {
			return nil, err
		}
	}
	return s.advisories.Publish(c.r.Context(), c.p, c.r.PathValue("id"), req.Summary)
}

func (s *Server) advisoryDocument(c *call) (any, error) {
	q := c.r.URL.Query()
	prof := advisory.ProfileSecurityAdvisory
	if v := q.Get("profile"); v != "" {
		var ok bool
		if prof, ok = advisory.ParseProfile(v); !ok {
			return nil, problem.InvalidField("profile", "unknown profile %q; use advisory or vex", v)
		}
	}
	version := -1
	if v := q.Get("version"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, problem.InvalidField("version", "version must be 0 (the draft) or a published version number, not %q", v)
		}
		version = n
	}
	if version < 0 {
		a, err := s.advisories.Get(c.r.Context(), c.p, c.r.PathValue("id"))
		if err != nil {
			return nil, err
		}
		version = a.Version
	}
	doc, err := s.advisories.Document(c.r.Context(), c.p, c.r.PathValue("id"), version, prof)
	if err != nil {
		return nil, err
	}
	return stream(func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Disposition", `attachment; filename="`+doc.FileName+`"`)
		_, _ = w.Write(doc.Data)
	}), nil
}

func (s *Server) listAdvisoryKeys(c *call) (any, error) {
	keys, err := s.advisories.SigningKeys(c.r.Context(), c.p)
	if keys == nil {
		keys = []advisory.SigningKey{}
	}
	return keys, err
}

func (s *Server) importAdvisoryKey(c *call) (any, error) {
	var req advisory.ImportKeyRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	return s.advisories.ImportKey(c.r.Context(), c.p, req.PrivateKey, req.Passphrase)
}

func (s *Server) draftAdvisory(c *call) (any, error) {
	ctx, id := c.r.Context(), c.r.PathValue("id")
	if err := c.p.Require(access.AdvisoryWrite); err != nil {
		return nil, err
	}
	v, err := s.vuln.Get(ctx, c.p, id)
	if err != nil {
		return nil, err
	}
	aff, err := s.vuln.Affected(ctx, c.p, id)
	if err != nil {
		return nil, err
	}
	org, err := s.tenancy.GetOrg(ctx, c.p, c.p.OrgSlug)
	if err != nil {
		return nil, err
	}
	src := advisory.Source{Vulnerability: v, Affected: aff, Now: s.clock.Now(),
		Publisher: advisory.Publisher{Name: org.Name, Namespace: s.publicURL, Category: "vendor"}}
	if src.Products, err = all(func(after string) ([]inventory.Product, string, error) {
		return s.inventory.ListProducts(ctx, c.p, after, paging.MaxLimit)
	}); err != nil {
		return nil, err
	}
	if src.Releases, err = all(func(after string) ([]release.Release, string, error) {
		return s.release.ListReleases(ctx, c.p, "", after, paging.MaxLimit)
	}); err != nil {
		return nil, err
	}
	return s.advisories.CreateDraft(ctx, c.p, advisory.DraftFrom(src))
}

// all collects every page of a list.
func all[T any](page func(after string) ([]T, string, error)) ([]T, error) {
	var out []T
	after := ""
	for {
		items, next, err := page(after)
		if err != nil {
			return nil, err
		}
		out = append(out, items...)
		if next == "" {
			return out, nil
		}
		after = next
	}
}
