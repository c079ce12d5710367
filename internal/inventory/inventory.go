// Package inventory owns what Steward knows about the fleet: products
// (device models), devices with their attributes in scopes (identity,
// reported, tags), groups, and each device's software-version history as
// reported at check-in.
package inventory

import (
	"context"
	"time"

	"github.com/steward-iot/steward/internal/audit"
)

// Capability says how a product can be updated.
type Capability string

const (
	CapabilityAB         Capability = "ab"          // A/B slots with rollback
	CapabilitySingleSlot Capability = "single-slot" // in-place update
	CapabilityMCUSUIT    Capability = "mcu-suit"    // microcontroller, SUIT manifests
	CapabilityNone       Capability = "none"        // cannot be updated in the field
)

var capabilities = []Capability{CapabilityAB, CapabilitySingleSlot, CapabilityMCUSUIT, CapabilityNone}

// Link classes, slowest last.
var linkClasses = []string{"ethernet", "wifi", "cellular", "nb-iot", "lora"}

// Product is a device model.
type Product struct {
	ID             string     `json:"id"`
	OrgID          string     `json:"org_id"`
	Slug           string     `json:"slug"`
	Name           string     `json:"name"`
	HardwareID     string     `json:"hardware_id" doc:"what devices of this model report at enrollment"`
	Capability     Capability `json:"capability" enum:"ab,single-slot,mcu-suit,none"`
	BatteryPowered bool       `json:"battery_powered"`
	LinkClass      string     `json:"link_class" enum:"ethernet,wifi,cellular,nb-iot,lora"`
	EndOfSupport   *time.Time `json:"end_of_support,omitempty" doc:"declared end of security support"`
	CreatedAt      time.Time  `json:"created_at"`
}

// State is a device's reported condition (the "reported" scope).
type State struct {
	BatteryPercent    *int   `json:"battery_percent,omitempty"`
	OnMains           bool   `json:"on_mains"`
	Link              string `json:"link"`
	Metered           bool   `json:"metered"`
	FreeStorage       int64  `json:"free_storage_bytes"`
	MaintenanceWindow string `json:"maintenance_window,omitempty"`
}

// Device is one enrolled device.
type Device struct {
	ID    string `json:"id"`
	OrgID string `json:"org_id"`
	// Identity scope: set at enrollment, never by the device afterwards.
	ProductID    string    `json:"product_id"`
	Product      string    `json:"product" doc:"product slug"`
	Serial       string    `json:"serial"`
	KeyID        string    `json:"key_id" doc:"hex SHA-256 of the device's PKIX public key"`
	Algorithm    string    `json:"algorithm"`
	PublicKeyPEM string    `json:"public_key_pem"`
	EnrolledVia  string    `json:"enrolled_via" doc:"enrollment-token:<id>, preauthorized, or operator"`
	CreatedAt    time.Time `json:"created_at"`
	// Lifecycle.
	Status          string    `json:"status" enum:"pending,active,rejected,revoked,quarantined,decommissioned"`
	StatusChangedAt time.Time `json:"status_changed_at"`
	// Reported scope.
	LastSeenAt       *time.Time `json:"last_seen_at,omitempty"`
	InstalledVersion string     `json:"installed_version"`
	State            State      `json:"state"`
	// Tags scope: set by people.
	Tags map[string]string `json:"tags"`

	// LastAuthAt is the newest accepted auth timestamp (replay guard).
	LastAuthAt   time.Time `json:"-"`
	SoftwareHash string    `json:"-"`
}

// Component is an installed software component.
type Component struct {
	Purl    string `json:"purl"`
	Version string `json:"version"`
}

// VersionEvent is one entry of a device's version history.
type VersionEvent struct {
	Version string    `json:"version"`
	SeenAt  time.Time `json:"seen_at"`
}

// Group is a static list of devices or, with a query, a dynamic group.
type Group struct {
	ID        string    `json:"id"`
	OrgID     string    `json:"org_id"`
	Name      string    `json:"name"`
	Query     string    `json:"query,omitempty" doc:"fleet query of a dynamic group; empty for a static group"`
	CreatedAt time.Time `json:"created_at"`
}

// Seen is a check-in to fold into the device row (batched).
type Seen struct {
	DeviceID string
	At       time.Time
	State    State
}

// Software is a changed software report.
type Software struct {
	DeviceID   string
	Version    string
	VersionKey string
	Hash       string
	Components []Component
	At         time.Time
}

// DeviceFilter selects devices of one organization.
type DeviceFilter struct {
	OrgID string
	// Cond, if set, builds an SQL condition over the devices table (alias
	// d) and products (alias p), binding each value through next, which
	// returns its placeholder. Values never enter the SQL text.
	Cond  func(next func(arg any) string) (string, error)
	After string
	Limit int
}

// VersionCount is one row of a version distribution.
type VersionCount struct {
	Version string `json:"version"`
	Devices int    `json:"devices"`
}

// Tx is what inventory needs from a store transaction.
type Tx interface {
	AppendAudit(ctx context.Context, r audit.Record) (audit.Event, error)

	InsertProduct(ctx context.Context, p Product) error
	ProductByID(ctx context.Context, orgID, id string) (Product, error)
	ProductBySlug(ctx context.Context, orgID, slug string) (Product, error)
	ProductByHardwareID(ctx context.Context, orgID, hardwareID string) (Product, error)
	ListProducts(ctx context.Context, orgID, after string, limit int) ([]Product, error)

	InsertDevice(ctx context.Context, d Device) error
	DeviceByID(ctx context.Context, orgID, id string) (Device, error)
	// DeviceForAuth looks a device up by id across organizations: the
	// device API knows only the device.
	DeviceForAuth(ctx context.Context, id string) (Device, error)
	DeviceByKeyID(ctx context.Context, keyID string) (Device, error)
	DeviceBySerial(ctx context.Context, orgID, serial string) (Device, error)
	ListDevices(ctx context.Context, f DeviceFilter) ([]Device, error)
	CountDevices(ctx context.Context, status string) (int, error)
	SetDeviceStatus(ctx context.Context, orgID, id, status string, at time.Time) error
	// AdvanceDeviceAuth stores at as the newest auth time if it is newer
	// than the stored one, and reports whether it was.
	AdvanceDeviceAuth(ctx context.Context, id string, at time.Time) (bool, error)
	RecordSoftware(ctx context.Context, s Software) error
	TouchDevices(ctx context.Context, seen []Seen) error
	DeviceComponents(ctx context.Context, deviceID string) ([]Component, error)
	SetDeviceTags(ctx context.Context, deviceID string, tags map[string]string) error
	VersionHistory(ctx context.Context, deviceID string, limit int) ([]VersionEvent, error)
	VersionDistribution(ctx context.Context, orgID, productID string) ([]VersionCount, error)
	CountNotSeenSince(ctx context.Context, orgID, productID string, before time.Time) (int, error)

	InsertGroup(ctx context.Context, g Group) error
	GroupByID(ctx context.Context, orgID, id string) (Group, error)
	GroupByName(ctx context.Context, orgID, name string) (Group, error)
	ListGroups(ctx context.Context, orgID, after string, limit int) ([]Group, error)
	AddGroupMembers(ctx context.Context, groupID string, deviceIDs []string) error
}

// Store runs functions in read or write transactions.
type Store interface {
	Read(ctx context.Context, fn func(Tx) error) error
	Write(ctx context.Context, fn func(Tx) error) error
}
