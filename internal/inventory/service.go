package inventory

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	packageurl "github.com/package-url/packageurl-go"

	"github.com/steward-iot/steward/agent/proto"
	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/audit"
	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/id"
	"github.com/steward-iot/steward/internal/inventory/query"
	"github.com/steward-iot/steward/internal/paging"
	"github.com/steward-iot/steward/internal/problem"
)

// Service implements products, device inventory, groups and version tracking.
type Service struct {
	store Store
	clock clock.Clock
}

// NewService returns an inventory service.
func NewService(s Store, c clock.Clock) *Service {
	if c == nil {
		c = clock.Real
	}
	return &Service{store: s, clock: c}
}

var slugRE = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$`)

func printable(field, v string, max int) error {
	if strings.TrimSpace(v) == "" || len(v) > max || strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return problem.InvalidField(field, "must be 1-%d characters without control characters", max)
	}
	return nil
}

// CreateProductRequest declares a device model.
type CreateProductRequest struct {
	Slug           string     `json:"slug"`
	Name           string     `json:"name"`
	HardwareID     string     `json:"hardware_id"`
	Capability     Capability `json:"capability" enum:"ab,single-slot,mcu-suit,none"`
	BatteryPowered bool       `json:"battery_powered,omitempty"`
	LinkClass      string     `json:"link_class" enum:"ethernet,wifi,cellular,nb-iot,lora"`
	EndOfSupport   string     `json:"end_of_support,omitempty" doc:"declared end of security support, YYYY-MM-DD"`
}

// CreateProduct declares a product.
func (s *Service) CreateProduct(ctx context.Context, p access.Principal, req CreateProductRequest) (Product, error) {
	if err := p.Require(access.ProductWrite); err != nil {
		return Product{}, err
	}
	if !slugRE.MatchString(req.Slug) {
		return Product{}, problem.InvalidField("slug", "%q: use 1-63 lowercase letters, digits and '-'", req.Slug)
	}
	if err := printable("name", req.Name, 200); err != nil {
		return Product{}, err
	}
	if err := printable("hardware_id", req.HardwareID, 128); err != nil {
		return Product{}, err
	}
	if !slices.Contains(capabilities, req.Capability) {
		return Product{}, problem.InvalidField("capability", "%q: use one of %v", req.Capability, capabilities)
	}
	if !slices.Contains(linkClasses, req.LinkClass) {
		return Product{}, problem.InvalidField("link_class", "%q: use one of %v", req.LinkClass, linkClasses)
	}
	prod := Product{ID: id.New(), OrgID: p.OrgID, Slug: req.Slug, Name: req.Name, HardwareID: req.HardwareID,
		Capability: req.Capability, BatteryPowered: req.BatteryPowered, LinkClass: req.LinkClass, CreatedAt: s.clock.Now()}
	if req.EndOfSupport != "" {
		t, err := time.Parse(time.DateOnly, req.EndOfSupport)
		if err != nil {
			return Product{}, problem.InvalidField("end_of_support", "%q is not a date like 2031-12-31", req.EndOfSupport)
		}
		prod.EndOfSupport = &t
	}
	err := s.store.Write(ctx, func(tx Tx) error {
		if err := tx.InsertProduct(ctx, prod); err != nil {
			return err
		}
		_, err := tx.AppendAudit(ctx, audit.Record{OrgID: p.OrgID, Actor: p.Actor, Action: "product.create",
			TargetType: "product", TargetID: prod.ID, Details: map[string]any{"slug": prod.Slug, "hardware_id": prod.HardwareID,
				"capability": prod.Capability, "end_of_support": req.EndOfSupport}})
		return err
	})
	return prod, err
}

// ListProducts lists the organization's products.
func (s *Service) ListProducts(ctx context.Context, p access.Principal, after string, limit int) ([]Product, string, error) {
	if err := p.Require(access.ProductRead); err != nil {
		return nil, "", err
	}
	return paging.List(ctx, s.store.Read, limit, func(tx Tx, limit int) ([]Product, error) {
		return tx.ListProducts(ctx, p.OrgID, after, limit)
	}, func(p Product) string { return p.ID })
}

// GetProduct returns a product by id or slug.
func (s *Service) GetProduct(ctx context.Context, p access.Principal, ref string) (Product, error) {
	if err := p.Require(access.ProductRead); err != nil {
		return Product{}, err
	}
	var prod Product
	err := s.store.Read(ctx, func(tx Tx) error {
		var err error
		prod, err = productByRef(ctx, tx, p.OrgID, ref)
		return err
	})
	return prod, err
}

func productByRef(ctx context.Context, tx Tx, orgID, ref string) (Product, error) {
	if id.Valid(ref) {
		return tx.ProductByID(ctx, orgID, ref)
	}
	return tx.ProductBySlug(ctx, orgID, ref)
}

// DeviceQuery selects devices for listing.
type DeviceQuery struct {
	// Query is a fleet query (see docs/fleet-query.md).
	Query string
	// Status, when set, keeps only devices in that status.
	Status string
	// GroupID, when set, keeps only members of that group.
	GroupID string
	After   string
	Limit   int
}

// ListDevices lists and searches the organization's devices.
func (s *Service) ListDevices(ctx context.Context, p access.Principal, dq DeviceQuery) ([]Device, string, error) {
	if err := p.Require(access.DeviceRead); err != nil {
		return nil, "", err
	}
	limit := paging.Limit(dq.Limit)
	var out []Device
	err := s.store.Read(ctx, func(tx Tx) error {
		cond, err := s.condition(ctx, tx, p.OrgID, dq)
		if err != nil {
			return err
		}
		out, err = tx.ListDevices(ctx, DeviceFilter{OrgID: p.OrgID, Cond: cond, After: dq.After, Limit: limit + 1})
		return err
	})
	out, next := paging.Trim(out, limit, func(d Device) string { return d.ID })
	return out, next, err
}

// condition combines status, group and fleet-query filters into one
// parameterized SQL condition.
func (s *Service) condition(ctx context.Context, tx Tx, orgID string, dq DeviceQuery) (func(func(any) string) (string, error), error) {
	var q *query.Query
	if strings.TrimSpace(dq.Query) != "" {
		var err error
		if q, err = query.Parse(dq.Query, Schema); err != nil {
			return nil, queryError(err)
		}
	}
	var group *Group
	if dq.GroupID != "" {
		g, err := tx.GroupByID(ctx, orgID, dq.GroupID)
		if err != nil {
			return nil, err
		}
		group = &g
	}
	var groupQuery *query.Query
	if group != nil && group.Query != "" {
		var err error
		if groupQuery, err = query.Parse(group.Query, Schema); err != nil {
			return nil, fmt.Errorf("stored query of group %s: %w", group.ID, err)
		}
	}
	if q == nil && dq.Status == "" && group == nil {
		return nil, nil
	}
	now := s.clock.Now()
	return func(next func(any) string) (string, error) {
		var parts []string
		if dq.Status != "" {
			parts = append(parts, "d.status = "+next(dq.Status))
		}
		if group != nil && group.Query == "" {
			parts = append(parts, "d.id IN (SELECT device_id FROM device_group_members WHERE group_id = "+next(group.ID)+")")
		}
		for _, qq := range []*query.Query{groupQuery, q} {
			if qq == nil {
				continue
			}
			c, err := qq.SQL(Schema, now, next)
			if err != nil {
				return "", queryError(err)
			}
			parts = append(parts, "("+c+")")
		}
		return strings.Join(parts, " AND "), nil
	}, nil
}

// queryError names the query field once (the parser's message already
// says "query: at byte N").
func queryError(err error) error {
	return problem.InvalidField("query", "%s", strings.TrimPrefix(err.Error(), "query: "))
}

// DeviceDetail is a device with its components and recent versions.
type DeviceDetail struct {
	Device
	Components []Component    `json:"components"`
	Versions   []VersionEvent `json:"version_history"`
}

// GetDevice returns one device with its software.
func (s *Service) GetDevice(ctx context.Context, p access.Principal, deviceID string) (DeviceDetail, error) {
	if err := p.Require(access.DeviceRead); err != nil {
		return DeviceDetail{}, err
	}
	var dd DeviceDetail
	err := s.store.Read(ctx, func(tx Tx) error {
		d, err := tx.DeviceByID(ctx, p.OrgID, deviceID)
		if err != nil {
			return err
		}
		dd.Device = d
		if dd.Components, err = tx.DeviceComponents(ctx, d.ID); err != nil {
			return err
		}
		dd.Versions, err = tx.VersionHistory(ctx, d.ID, 100)
		return err
	})
	if dd.Components == nil {
		dd.Components = []Component{}
	}
	if dd.Versions == nil {
		dd.Versions = []VersionEvent{}
	}
	return dd, err
}

var tagKeyRE = regexp.MustCompile(`^[a-z0-9_.-]{1,64}$`)

// SetTags replaces a device's tags (the people-set scope).
func (s *Service) SetTags(ctx context.Context, p access.Principal, deviceID string, tags map[string]string) (Device, error) {
	if err := p.Require(access.DeviceWrite); err != nil {
		return Device{}, err
	}
	if len(tags) > 64 {
		return Device{}, problem.InvalidField("tags", "at most 64 tags per device")
	}
	for k, v := range tags {
		if !tagKeyRE.MatchString(k) {
			return Device{}, problem.InvalidField("tags", "key %q: use 1-64 of a-z 0-9 _ . -", k)
		}
		if len(v) > 256 || strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return Device{}, problem.InvalidField("tags", "value of %q: at most 256 characters, no control characters", k)
		}
	}
	var d Device
	err := s.store.Write(ctx, func(tx Tx) error {
		var err error
		if d, err = tx.DeviceByID(ctx, p.OrgID, deviceID); err != nil {
			return err
		}
		if err := tx.SetDeviceTags(ctx, d.ID, tags); err != nil {
			return err
		}
		_, err = tx.AppendAudit(ctx, audit.Record{OrgID: p.OrgID, Actor: p.Actor, Action: "device.tags",
			TargetType: "device", TargetID: d.ID, Details: map[string]any{"from": d.Tags, "to": tags}})
		d.Tags = tags
		return err
	})
	return d, err
}

// CreateGroupRequest makes a static group, or a dynamic one with a query.
type CreateGroupRequest struct {
	Name  string `json:"name"`
	Query string `json:"query,omitempty" doc:"fleet query; empty makes a static group"`
}

// CreateGroup creates a device group.
func (s *Service) CreateGroup(ctx context.Context, p access.Principal, req CreateGroupRequest) (Group, error) {
	if err := p.Require(access.DeviceWrite); err != nil {
		return Group{}, err
	}
	if err := printable("name", req.Name, 100); err != nil {
		return Group{}, err
	}
	if req.Query != "" {
		q, err := query.Parse(req.Query, Schema)
		if err != nil {
			return Group{}, queryError(err)
		}
		req.Query = q.String()
	}
	g := Group{ID: id.New(), OrgID: p.OrgID, Name: req.Name, Query: req.Query, CreatedAt: s.clock.Now()}
	err := s.store.Write(ctx, func(tx Tx) error {
		if err := tx.InsertGroup(ctx, g); err != nil {
			return err
		}
		_, err := tx.AppendAudit(ctx, audit.Record{OrgID: p.OrgID, Actor: p.Actor, Action: "group.create",
			TargetType: "group", TargetID: g.ID, Details: map[string]any{"name": g.Name, "query": g.Query}})
		return err
	})
	return g, err
}

// ListGroups lists device groups.
func (s *Service) ListGroups(ctx context.Context, p access.Principal, after string, limit int) ([]Group, string, error) {
	if err := p.Require(access.DeviceRead); err != nil {
		return nil, "", err
	}
	return paging.List(ctx, s.store.Read, limit, func(tx Tx, limit int) ([]Group, error) {
		return tx.ListGroups(ctx, p.OrgID, after, limit)
	}, func(g Group) string { return g.ID })
}

// AddGroupMembers adds devices to a static group.
func (s *Service) AddGroupMembers(ctx context.Context, p access.Principal, groupID string, deviceIDs []string) (Group, error) {
	if err := p.Require(access.DeviceWrite); err != nil {
		return Group{}, err
	}
	if len(deviceIDs) == 0 || len(deviceIDs) > 1000 {
		return Group{}, problem.InvalidField("device_ids", "give 1 to 1000 device ids")
	}
	var g Group
	err := s.store.Write(ctx, func(tx Tx) error {
		var err error
		if g, err = tx.GroupByID(ctx, p.OrgID, groupID); err != nil {
			return err
		}
		if g.Query != "" {
			return problem.Conflict("group %q is dynamic: its members are the devices matching its query", g.Name)
		}
		for _, d := range deviceIDs {
			if _, err := tx.DeviceByID(ctx, p.OrgID, d); problem.Is(err, problem.KindNotFound) {
				return problem.InvalidField("device_ids", "no device %s in this organization", d)
			} else if err != nil {
				return err
			}
		}
		if err := tx.AddGroupMembers(ctx, g.ID, deviceIDs); err != nil {
			return err
		}
		_, err = tx.AppendAudit(ctx, audit.Record{OrgID: p.OrgID, Actor: p.Actor, Action: "group.add_members",
			TargetType: "group", TargetID: g.ID, Details: map[string]any{"device_ids": deviceIDs}})
		return err
	})
	return g, err
}

// VersionReport is a product's installed-version picture.
type VersionReport struct {
	Product      Product        `json:"product"`
	Active       int            `json:"active_devices"`
	Distribution []VersionCount `json:"distribution" doc:"active devices per installed version, newest first"`
	StaleDays    int            `json:"stale_days"`
	NotSeen      int            `json:"not_seen" doc:"active devices not seen for stale_days days"`
}

// Versions reports the version distribution of a product.
func (s *Service) Versions(ctx context.Context, p access.Principal, productRef string, staleDays int) (VersionReport, error) {
	if err := p.Require(access.DeviceRead); err != nil {
		return VersionReport{}, err
	}
	if staleDays <= 0 {
		staleDays = 7
	}
	var r VersionReport
	err := s.store.Read(ctx, func(tx Tx) error {
		var err error
		if r.Product, err = productByRef(ctx, tx, p.OrgID, productRef); err != nil {
			return err
		}
		if r.Distribution, err = tx.VersionDistribution(ctx, p.OrgID, r.Product.ID); err != nil {
			return err
		}
		for _, v := range r.Distribution {
			r.Active += v.Devices
		}
		r.StaleDays = staleDays
		r.NotSeen, err = tx.CountNotSeenSince(ctx, p.OrgID, r.Product.ID, s.clock.Now().Add(-time.Duration(staleDays)*24*time.Hour))
		return err
	})
	if r.Distribution == nil {
		r.Distribution = []VersionCount{}
	}
	return r, err
}

// Report validation limits.
const (
	MaxComponents = 5000
	maxPurl       = 512
)

var validLinks = append([]string{""}, linkClasses...)

// ValidateCheckin rejects impossible or oversized reports before anything
// is stored.
func ValidateCheckin(req proto.CheckinRequest) error {
	if err := printable("installed.version", req.Installed.Version, 64); err != nil {
		return err
	}
	if len(req.Installed.Components) > MaxComponents {
		return problem.InvalidField("installed.components", "%d components; at most %d", len(req.Installed.Components), MaxComponents)
	}
	seen := make(map[string]bool, len(req.Installed.Components))
	for i, c := range req.Installed.Components {
		field := fmt.Sprintf("installed.components[%d]", i)
		if len(c.Purl) > maxPurl {
			return problem.InvalidField(field, "purl longer than %d bytes", maxPurl)
		}
		if _, err := packageurl.FromString(c.Purl); err != nil {
			return problem.InvalidField(field, "%q is not a package URL: %v", c.Purl, err)
		}
		if len(c.Version) > 128 {
			return problem.InvalidField(field, "version longer than 128 bytes")
		}
		if seen[c.Purl] {
			return problem.InvalidField(field, "%q is listed twice", c.Purl)
		}
		seen[c.Purl] = true
	}
	st := req.State
	if st.BatteryPercent != nil && (*st.BatteryPercent < 0 || *st.BatteryPercent > 100) {
		return problem.InvalidField("state.battery_percent", "%d is not between 0 and 100", *st.BatteryPercent)
	}
	if !slices.Contains(validLinks, st.Link) {
		return problem.InvalidField("state.link", "%q: use one of %v", st.Link, linkClasses)
	}
	if st.FreeStorage < 0 {
		return problem.InvalidField("state.free_storage_bytes", "must not be negative")
	}
	if len(st.MaintenanceWindow) > 64 {
		return problem.InvalidField("state.maintenance_window", "at most 64 characters")
	}
	return nil
}

// SoftwareHash fingerprints a software report, so an unchanged one is
// recognized without touching the database.
func SoftwareHash(in proto.Installed) string {
	cs := make([]string, len(in.Components))
	for i, c := range in.Components {
		cs[i] = c.Purl + "\x00" + c.Version
	}
	slices.Sort(cs)
	h := sha256.New()
	h.Write([]byte(in.Version))
	for _, c := range cs {
		h.Write([]byte{'\n'})
		h.Write([]byte(c))
	}
	return hex.EncodeToString(h.Sum(nil))
}
