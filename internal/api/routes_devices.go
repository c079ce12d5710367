package api

import (
	"encoding/csv"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/steward-iot/steward/internal/identity"
	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/openapi"
	"github.com/steward-iot/steward/internal/problem"
)

// DeviceIDs is a bulk request naming devices.
type DeviceIDs struct {
	DeviceIDs []string `json:"device_ids"`
}

// StatusResults is the per-device outcome of a bulk status change.
type StatusResults struct {
	Results []identity.StatusResult `json:"results"`
}

// Tags replaces a device's tags.
type Tags struct {
	Tags map[string]string `json:"tags"`
}

var deviceListParams = append([]openapi.Param{
	{Name: "query", In: "query", Description: "fleet query, e.g. product = \"gw-100\" and version < \"2.4.0\" (docs/fleet-query.md)"},
	{Name: "status", In: "query", Description: "only devices in this status"},
	{Name: "group", In: "query", Description: "only members of this group (id)"},
}, pageParams...)

func (s *Server) deviceRoutes() []route {
	if s.inventory == nil {
		return nil
	}
	return []route{
		{op: openapi.Operation{Method: "GET", Path: "/api/v1/orgs/{org}/products", ID: "listProducts", Summary: "Products (device models).",
			Tags: []string{"products"}, Params: pageParams, Response: Page[inventory.Product]{}, Errors: readErrors}, handle: s.listProducts},
		{op: openapi.Operation{Method: "POST", Path: "/api/v1/orgs/{org}/products", ID: "createProduct", Summary: "Declare a product.",
			Tags: []string{"products"}, Params: []openapi.Param{idemParam}, Request: inventory.CreateProductRequest{},
			Response: inventory.Product{}, Status: http.StatusCreated, Errors: createErrors}, handle: s.createProduct, idempotent: true},
		{op: openapi.Operation{Method: "GET", Path: "/api/v1/orgs/{org}/products/{id}", ID: "getProduct", Summary: "One product, by id or slug.",
			Tags: []string{"products"}, Response: inventory.Product{}, Errors: readErrors}, handle: s.getProduct},
		{op: openapi.Operation{Method: "GET", Path: "/api/v1/orgs/{org}/products/{id}/versions", ID: "productVersions",
			Summary: "Installed-version distribution of a product and devices not seen lately.", Tags: []string{"products"},
			Params:   []openapi.Param{{Name: "stale_days", In: "query", Description: "count active devices not seen for this many days (default 7)", Schema: 0}},
			Response: inventory.VersionReport{}, Errors: readErrors}, handle: s.productVersions},

		{op: openapi.Operation{Method: "GET", Path: "/api/v1/orgs/{org}/enrollment-tokens", ID: "listEnrollmentTokens", Summary: "Enrollment tokens.",
			Tags: []string{"enrollment"}, Params: pageParams, Response: Page[identity.EnrollmentToken]{}, Errors: readErrors}, handle: s.listEnrollTokens},
		{op: openapi.Operation{Method: "POST", Path: "/api/v1/orgs/{org}/enrollment-tokens", ID: "createEnrollmentToken",
			Summary: "Create a token with which devices enroll as active; the secret is in this response only.", Tags: []string{"enrollment"},
			Params: []openapi.Param{idemParam}, Request: identity.CreateEnrollmentTokenRequest{}, Response: identity.CreatedEnrollmentToken{},
			Status: http.StatusCreated, Errors: createErrors}, handle: s.createEnrollToken, idempotent: true},
		{op: openapi.Operation{Method: "DELETE", Path: "/api/v1/orgs/{org}/enrollment-tokens/{id}", ID: "revokeEnrollmentToken",
			Summary: "Revoke an enrollment token.", Tags: []string{"enrollment"}, Response: identity.EnrollmentToken{}, Errors: changeErrors},
			handle: s.revokeEnrollToken},
		{op: openapi.Operation{Method: "POST", Path: "/api/v1/orgs/{org}/preauthorizations", ID: "preauthorize",
			Summary: "Let these serials or key ids go active when they enroll.", Tags: []string{"enrollment"},
			Request: identity.PreauthorizeRequest{}, Response: []identity.Preauthorization{}, Status: http.StatusCreated, Errors: createErrors},
			handle: s.preauthorize},

		{op: openapi.Operation{Method: "GET", Path: "/api/v1/orgs/{org}/devices", ID: "listDevices",
			Summary: "List and search devices.", Tags: []string{"devices"}, Params: deviceListParams,
			Response: Page[inventory.Device]{}, Errors: readErrors}, handle: s.listDevices},
		{op: openapi.Operation{Method: "GET", Path: "/api/v1/orgs/{org}/devices/export", ID: "exportDevices",
			Summary: "Every matching device as CSV (format=csv) or a JSON array (format=json).", Tags: []string{"devices"},
			Params:   append([]openapi.Param{{Name: "format", In: "query", Description: "csv or json"}}, deviceListParams[:3]...),
			Response: []inventory.Device{}, Errors: readErrors}, handle: s.exportDevices},
		{op: openapi.Operation{Method: "GET", Path: "/api/v1/orgs/{org}/devices/{id}", ID: "getDevice",
			Summary: "One device with its components and version history.", Tags: []string{"devices"},
			Response: inventory.DeviceDetail{}, Errors: readErrors}, handle: s.getDevice},
		{op: openapi.Operation{Method: "PUT", Path: "/api/v1/orgs/{org}/devices/{id}/tags", ID: "setDeviceTags",
			Summary: "Replace a device's tags.", Tags: []string{"devices"}, Request: Tags{}, Response: inventory.Device{},
			Errors: createErrors}, handle: s.setTags},
		{op: openapi.Operation{Method: "POST", Path: "/api/v1/orgs/{org}/devices/accept", ID: "acceptDevices",
			Summary: "Accept pending devices.", Tags: []string{"devices"}, Request: DeviceIDs{}, Response: StatusResults{},
			Errors: createErrors}, handle: s.changeStatus("accept")},
		{op: openapi.Operation{Method: "POST", Path: "/api/v1/orgs/{org}/devices/reject", ID: "rejectDevices",
			Summary: "Reject devices; they are refused from their next request.", Tags: []string{"devices"}, Request: DeviceIDs{},
			Response: StatusResults{}, Errors: createErrors}, handle: s.changeStatus("reject")},
		{op: openapi.Operation{Method: "POST", Path: "/api/v1/orgs/{org}/devices/revoke", ID: "revokeDevices",
			Summary: "Revoke devices' credentials; they are refused from their next request.", Tags: []string{"devices"},
			Request: DeviceIDs{}, Response: StatusResults{}, Errors: createErrors}, handle: s.changeStatus("revoke")},

		{op: openapi.Operation{Method: "GET", Path: "/api/v1/orgs/{org}/groups", ID: "listGroups", Summary: "Device groups.",
			Tags: []string{"groups"}, Params: pageParams, Response: Page[inventory.Group]{}, Errors: readErrors}, handle: s.listGroups},
		{op: openapi.Operation{Method: "POST", Path: "/api/v1/orgs/{org}/groups", ID: "createGroup",
			Summary: "Create a static group, or a dynamic one defined by a fleet query.", Tags: []string{"groups"},
			Params: []openapi.Param{idemParam}, Request: inventory.CreateGroupRequest{}, Response: inventory.Group{},
			Status: http.StatusCreated, Errors: createErrors}, handle: s.createGroup, idempotent: true},
		{op: openapi.Operation{Method: "POST", Path: "/api/v1/orgs/{org}/groups/{id}/members", ID: "addGroupMembers",
			Summary: "Add devices to a static group.", Tags: []string{"groups"}, Request: DeviceIDs{}, Response: inventory.Group{},
			Errors: createErrors}, handle: s.addGroupMembers},
	}
}

func (s *Server) listProducts(c *call) (any, error) {
	pq, err := c.page()
	if err != nil {
		return nil, err
	}
	items, next, err := s.inventory.ListProducts(c.r.Context(), c.p, pq.after, pq.limit)
	return newPage(items, next), err
}

func (s *Server) createProduct(c *call) (any, error) {
	var req inventory.CreateProductRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	return s.inventory.CreateProduct(c.r.Context(), c.p, req)
}

func (s *Server) getProduct(c *call) (any, error) {
	return s.inventory.GetProduct(c.r.Context(), c.p, c.r.PathValue("id"))
}

func (s *Server) productVersions(c *call) (any, error) {
	days := 0
	if v := c.r.URL.Query().Get("stale_days"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 3650 {
			return nil, problem.InvalidField("stale_days", "%q is not a whole number of days from 1 to 3650", v)
		}
		days = n
	}
	return s.inventory.Versions(c.r.Context(), c.p, c.r.PathValue("id"), days)
}

func (s *Server) listEnrollTokens(c *call) (any, error) {
	pq, err := c.page()
	if err != nil {
		return nil, err
	}
	items, next, err := s.identity.ListEnrollmentTokens(c.r.Context(), c.p, pq.after, pq.limit)
	return newPage(items, next), err
}

func (s *Server) createEnrollToken(c *call) (any, error) {
	var req identity.CreateEnrollmentTokenRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	return s.identity.CreateEnrollmentToken(c.r.Context(), c.p, req)
}

func (s *Server) revokeEnrollToken(c *call) (any, error) {
	return s.identity.RevokeEnrollmentToken(c.r.Context(), c.p, c.r.PathValue("id"))
}

func (s *Server) preauthorize(c *call) (any, error) {
	var req identity.PreauthorizeRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	return s.identity.Preauthorize(c.r.Context(), c.p, req)
}

func (c *call) deviceQuery() (inventory.DeviceQuery, error) {
	pq, err := c.page()
	if err != nil {
		return inventory.DeviceQuery{}, err
	}
	q := c.r.URL.Query()
	return inventory.DeviceQuery{Query: q.Get("query"), Status: q.Get("status"), GroupID: q.Get("group"),
		After: pq.after, Limit: pq.limit}, nil
}

func (s *Server) listDevices(c *call) (any, error) {
	dq, err := c.deviceQuery()
	if err != nil {
		return nil, err
	}
	items, next, err := s.inventory.ListDevices(c.r.Context(), c.p, dq)
	return newPage(items, next), err
}

// maxExport bounds one export; larger fleets page through listDevices.
const maxExport = 1_000_000

// exportDevices streams every matching device, page by page, so memory
// stays flat for large fleets.
func (s *Server) exportDevices(c *call) (any, error) {
	dq, err := c.deviceQuery()
	if err != nil {
		return nil, err
	}
	format := c.r.URL.Query().Get("format")
	if format == "" {
		format = "csv"
	}
	if format != "csv" && format != "json" {
		return nil, problem.InvalidField("format", "%q: use csv or json", format)
	}
	dq.Limit, dq.After = 500, ""
	first, next, err := s.inventory.ListDevices(c.r.Context(), c.p, dq)
	if err != nil {
		return nil, err
	}
	return stream(func(w http.ResponseWriter) {
		page := first
		if format == "csv" {
			w.Header().Set("Content-Type", "text/csv; charset=utf-8")
			w.Header().Set("Content-Disposition", `attachment; filename="devices.csv"`)
		} else {
			w.Header().Set("Content-Type", "application/json")
		}
		cw := csv.NewWriter(w)
		if format == "csv" {
			_ = cw.Write([]string{"id", "product", "serial", "status", "installed_version", "last_seen_at", "link", "battery_percent", "tags"})
		} else {
			_, _ = w.Write([]byte("["))
		}
		n := 0
		for {
			for _, d := range page {
				if format == "csv" {
					_ = cw.Write(csvRow(d))
				} else {
					if n > 0 {
						_, _ = w.Write([]byte(","))
					}
					b, _ := json.Marshal(d)
					_, _ = w.Write(b)
				}
				n++
			}
			if next == "" || n >= maxExport {
				break
			}
			dq.After = next
			if page, next, err = s.inventory.ListDevices(c.r.Context(), c.p, dq); err != nil {
				// Headers are gone; cut the body short so the client sees a broken export.
				s.log.ErrorContext(c.r.Context(), "device export failed mid-stream", "err", err)
				panic(http.ErrAbortHandler)
			}
		}
		if format == "csv" {
			cw.Flush()
		} else {
			_, _ = w.Write([]byte("]\n"))
		}
	}), nil
}

func csvRow(d inventory.Device) []string {
	seen, battery := "", ""
	if d.LastSeenAt != nil {
		seen = d.LastSeenAt.Format(time.RFC3339)
	}
	if d.State.BatteryPercent != nil {
		battery = strconv.Itoa(*d.State.BatteryPercent)
	}
	tags := make([]string, 0, len(d.Tags))
	for k, v := range d.Tags {
		tags = append(tags, k+"="+v)
	}
	slices.Sort(tags)
	return []string{d.ID, d.Product, d.Serial, d.Status, d.InstalledVersion, seen, d.State.Link, battery, strings.Join(tags, ";")}
}

func (s *Server) getDevice(c *call) (any, error) {
	return s.inventory.GetDevice(c.r.Context(), c.p, c.r.PathValue("id"))
}

func (s *Server) setTags(c *call) (any, error) {
	var req Tags
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	if req.Tags == nil {
		req.Tags = map[string]string{}
	}
	return s.inventory.SetTags(c.r.Context(), c.p, c.r.PathValue("id"), req.Tags)
}

func (s *Server) changeStatus(action string) func(c *call) (any, error) {
	return func(c *call) (any, error) {
		var req DeviceIDs
		if err := c.decode(&req); err != nil {
			return nil, err
		}
		rs, err := s.identity.ChangeStatus(c.r.Context(), c.p, action, req.DeviceIDs)
		return StatusResults{Results: rs}, err
	}
}

func (s *Server) listGroups(c *call) (any, error) {
	pq, err := c.page()
	if err != nil {
		return nil, err
	}
	items, next, err := s.inventory.ListGroups(c.r.Context(), c.p, pq.after, pq.limit)
	return newPage(items, next), err
}

func (s *Server) createGroup(c *call) (any, error) {
	var req inventory.CreateGroupRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	return s.inventory.CreateGroup(c.r.Context(), c.p, req)
}

func (s *Server) addGroupMembers(c *call) (any, error) {
	var req DeviceIDs
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	return s.inventory.AddGroupMembers(c.r.Context(), c.p, c.r.PathValue("id"), req.DeviceIDs)
}
