// Package proto holds the wire types of the device API (/device/v1), shared
// by the server and the agent so the two cannot drift. It is part of the
// public agent module surface: change it only together with
// agent.ProtocolVersion.
//
// # Requests a device makes
//
//  1. POST /device/v1/enroll, body EnrollRequest, header SignatureHeader
//     carrying the base64 signature, made with the device key, over the
//     exact body bytes. Answers EnrollResponse: the device is "active" at
//     once (valid enrollment token, or a pre-authorized serial or key),
//     otherwise "pending" until an operator accepts or rejects it.
//     Enrolling again with the same key is safe and returns the status.
//  2. POST /device/v1/auth, body AuthRequest, signed the same way. Answers
//     AuthResponse with a short-lived bearer token. The timestamp must be
//     within MaxClockSkew of the server's clock and later than the one in
//     the device's previous successful auth, so a captured request cannot
//     be replayed.
//  3. POST /device/v1/checkin with "Authorization: Bearer <token>", body
//     CheckinRequest. Answers CheckinResponse: the next action and when to
//     check in next. The server checks the device's status on every
//     request, so a revoked device is refused at once, not at token expiry.
//  4. POST /device/v1/updates/status with the bearer token, body
//     UpdateStatus, at each step of an update. Answers
//     UpdateStatusResponse; retry until it arrives (reports are idempotent
//     on their ReportID).
//
// Errors are RFC 9457 problem documents; Code (ProblemCode) tells the agent
// what to do without parsing prose.
package proto

import "time"

// SignatureHeader carries the base64 (standard encoding) signature of a
// request body made with the device key.
const SignatureHeader = "Steward-Signature"

// MaxClockSkew is how far a signed timestamp may be from server time.
const MaxClockSkew = 5 * time.Minute

// MaxBody bounds every device request body.
const MaxBody = 256 << 10

// Device statuses.
const (
	StatusPending        = "pending"
	StatusActive         = "active"
	StatusRejected       = "rejected"
	StatusRevoked        = "revoked"
	StatusQuarantined    = "quarantined"
	StatusDecommissioned = "decommissioned"
)

// EnrollRequest asks the server to register the device's key.
type EnrollRequest struct {
	ProtocolVersion int    `json:"protocol_version"`
	Org             string `json:"org" doc:"slug of the owner organization; may be omitted with an enrollment token"`
	HardwareID      string `json:"hardware_id" doc:"the product's hardware id, e.g. gw-100-rev-b"`
	Serial          string `json:"serial"`
	Algorithm       string `json:"algorithm" enum:"ed25519,ecdsa-p256"`
	PublicKeyPEM    string `json:"public_key_pem"`
	// EnrollmentToken, when valid, makes the device active at once.
	EnrollmentToken string    `json:"enrollment_token,omitempty"`
	Timestamp       time.Time `json:"timestamp"`
}

// EnrollResponse tells the device its id and status.
type EnrollResponse struct {
	DeviceID string `json:"device_id"`
	Status   string `json:"status" enum:"pending,active,rejected,revoked,quarantined,decommissioned"`
	// RetryAfterSeconds is how long a pending device should wait before
	// trying to authenticate again.
	RetryAfterSeconds int `json:"retry_after_seconds,omitempty"`
}

// AuthRequest proves possession of the device key.
type AuthRequest struct {
	KeyID     string    `json:"key_id" doc:"hex SHA-256 of the PKIX DER public key"`
	Timestamp time.Time `json:"timestamp"`
}

// AuthResponse carries a short-lived device token.
type AuthResponse struct {
	DeviceID  string    `json:"device_id"`
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Component is one installed software component.
type Component struct {
	// Purl is a package URL (purl-spec); its version, if any, should match Version.
	Purl    string `json:"purl"`
	Version string `json:"version,omitempty"`
}

// Installed is the software the device runs.
type Installed struct {
	Version    string      `json:"version" doc:"the installed release version"`
	Components []Component `json:"components,omitempty"`
}

// Link classes a device may report.
const (
	LinkEthernet = "ethernet"
	LinkWiFi     = "wifi"
	LinkCellular = "cellular"
	LinkNBIoT    = "nb-iot"
	LinkLoRa     = "lora"
)

// State is the device's condition at check-in.
type State struct {
	// BatteryPercent is nil for devices without a battery.
	BatteryPercent *int   `json:"battery_percent,omitempty"`
	OnMains        bool   `json:"on_mains"`
	Link           string `json:"link" enum:"ethernet,wifi,cellular,nb-iot,lora"`
	Metered        bool   `json:"metered"`
	FreeStorage    int64  `json:"free_storage_bytes"`
	// MaintenanceWindow is the device's local window as "HH:MM-HH:MM TZ"
	// (e.g. "02:00-04:00 Europe/Berlin"); empty for none.
	MaintenanceWindow string `json:"maintenance_window,omitempty"`
}

// CheckinRequest reports what the device runs and its state.
type CheckinRequest struct {
	Installed Installed `json:"installed"`
	State     State     `json:"state"`
}

// Actions the server may ask for.
const (
	ActionNone = "none"
	// ActionUpdate: refresh the director and image metadata and install
	// what both agree on.
	ActionUpdate = "update"
)

// Update modes (UpdateOffer.Mode).
const (
	// ModeForced: install as soon as the update is downloaded.
	ModeForced = "forced"
	// ModeSoft: install when convenient; the device may defer (a user is
	// busy, a job runs) but should install by Deadline when one is set.
	ModeSoft = "soft"
	// ModeDownloadOnly: download and verify the update, report
	// "downloaded", and do not install it; a later check-in with another
	// mode says when to.
	ModeDownloadOnly = "download-only"
)

// UpdateOffer says how to take the update an "update" action announces.
// Agents that do not know it treat every update as forced.
type UpdateOffer struct {
	// RolloutID names the rollout that sent the update; empty for a
	// person's direct assignment.
	RolloutID string `json:"rollout_id,omitempty"`
	Mode      string `json:"mode" enum:"forced,soft,download-only"`
	Urgency   string `json:"urgency,omitempty" enum:"scheduled,out-of-cycle,immediate"`
	// Deadline, when set, is when a soft update stops being optional.
	Deadline *time.Time `json:"deadline,omitempty"`
}

// CheckinResponse tells the device what to do next.
type CheckinResponse struct {
	Action string `json:"action" enum:"none,update"`
	// PollIntervalSeconds is when to check in next; the server paces its
	// fleet with it. Agents add their own jitter.
	PollIntervalSeconds int       `json:"poll_interval_seconds"`
	ServerTime          time.Time `json:"server_time"`
	// Update qualifies an "update" action (optional; absent with "none").
	Update *UpdateOffer `json:"update,omitempty"`
}

// ProblemCode values in problem documents on the device API.
const (
	CodeDevicePending  = "device_pending"  // wait RetryAfter, then auth again
	CodeDeviceRejected = "device_rejected" // stop; an operator rejected it
	CodeDeviceRevoked  = "device_revoked"  // stop; credentials revoked
	CodeTokenInvalid   = "token_invalid"   // authenticate again
	CodeClockSkew      = "clock_skew"      // fix the clock (server time in the problem)
	CodeReplay         = "replay"          // a timestamp not newer than the last auth
	CodeBadSignature   = "bad_signature"
	CodeUnknownDevice  = "unknown_device" // enroll first
)

// Problem is an RFC 9457 problem document with a machine-readable code.
type Problem struct {
	Type       string    `json:"type"`
	Title      string    `json:"title"`
	Status     int       `json:"status"`
	Detail     string    `json:"detail,omitempty"`
	Code       string    `json:"code,omitempty"`
	ServerTime time.Time `json:"server_time,omitzero"`
}

// Update steps a device reports in UpdateStatus, in the order they happen.
// "failed" and "rolled-back" end an attempt that did not commit.
const (
	StepDownloading = "downloading"
	StepDownloaded  = "downloaded"
	StepInstalling  = "installing"
	StepRebooting   = "rebooting"
	StepCommitted   = "committed"
	StepFailed      = "failed"
	StepRolledBack  = "rolled-back"
)

// Reason codes: why an update failed (required with StepFailed) or was
// rolled back (optional with StepRolledBack).
const (
	ReasonDownloadFailed      = "download-failed"
	ReasonVerificationFailed  = "verification-failed"
	ReasonInsufficientStorage = "insufficient-storage"
	ReasonInstallFailed       = "install-failed"
	ReasonHealthCheckFailed   = "health-check-failed"
	ReasonPowerLoss           = "power-loss"
	ReasonRollbackRefused     = "rollback-refused"
)

// Bounds of an UpdateStatus report.
const (
	MaxStatusBody     = 4 << 10 // the whole request body
	MaxStatusDetail   = 1 << 10 // Detail, in bytes
	MaxStatusReportID = 64      // ReportID, in bytes
)

// UpdateStatus reports one step of installing a release:
// POST /device/v1/updates/status with the device token. A device retries
// a report until it is acknowledged; the server stores each ReportID once,
// so a report sent again is answered Duplicate and changes nothing.
type UpdateStatus struct {
	// ReportID is unique per report, chosen by the device (e.g. a UUID),
	// and the same on every retry of that report.
	ReportID  string `json:"report_id" doc:"device-chosen unique id of this report, reused on retries; 1-64 of A-Z a-z 0-9 . _ : -"`
	ReleaseID string `json:"release_id"`
	Step      string `json:"step" enum:"downloading,downloaded,installing,rebooting,committed,failed,rolled-back"`
	// ReasonCode is required when Step is "failed", allowed with
	// "rolled-back", and refused otherwise.
	ReasonCode string `json:"reason_code,omitempty" enum:"download-failed,verification-failed,insufficient-storage,install-failed,health-check-failed,power-loss,rollback-refused"`
	Detail     string `json:"detail,omitempty" doc:"free text for people, at most 1 KiB"`
	BytesDone  *int64 `json:"bytes_done,omitempty"`
	BytesTotal *int64 `json:"bytes_total,omitempty"`
	// At is the device's clock when the step happened; it may be wrong.
	At time.Time `json:"at"`
}

// UpdateStatusResponse acknowledges an UpdateStatus: stop retrying it.
type UpdateStatusResponse struct {
	Accepted bool `json:"accepted"`
	// Duplicate: this ReportID was stored before; nothing changed.
	Duplicate bool `json:"duplicate"`
}
