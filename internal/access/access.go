// Package access owns roles, permissions and the authenticated principal:
// who is acting, in which organization, allowed to do what. Domain services
// check permissions here, so a new HTTP handler cannot forget to.
package access

import (
	"fmt"
	"slices"

	"github.com/steward-iot/steward/internal/problem"
)

// Role is a named set of permissions within one organization.
type Role string

const (
	RoleAdmin           Role = "admin"
	RoleReleaseManager  Role = "release-manager"
	RoleSecurityOfficer Role = "security-officer"
	RoleOperator        Role = "operator"
	RoleAuditor         Role = "auditor"
)

// Roles lists every role, most powerful first.
var Roles = []Role{RoleAdmin, RoleReleaseManager, RoleSecurityOfficer, RoleOperator, RoleAuditor}

// Permission is one thing a role may do.
type Permission string

const (
	OrgRead    Permission = "org.read"
	OrgCreate  Permission = "org.create" // also needs an instance organization
	UserRead   Permission = "user.read"
	UserWrite  Permission = "user.write"
	TokenRead  Permission = "token.read"
	TokenWrite Permission = "token.write"
	AuditRead  Permission = "audit.read"

	ProductRead  Permission = "product.read"
	ProductWrite Permission = "product.write"
	DeviceRead   Permission = "device.read"
	DeviceWrite  Permission = "device.write" // accept, reject, revoke, tags, groups
	EnrollWrite  Permission = "enroll.write" // enrollment tokens, pre-authorizations
	ReleaseRead  Permission = "release.read"
	ReleaseWrite Permission = "release.write" // upload artifacts, create releases
	VulnRead     Permission = "vuln.read"
	VulnWrite    Permission = "vuln.write" // import and triage vulnerabilities

	ReportRead        Permission = "report.read"  // inbound vulnerability reports (may hold exploit details)
	ReportWrite       Permission = "report.write" // acknowledge, answer, link or close reports
	RiskAccept        Permission = "risk.accept"  // approve accepting a vulnerability's risk
	AdvisoryWrite     Permission = "advisory.write"
	SubscriptionRead  Permission = "subscription.read"
	SubscriptionWrite Permission = "subscription.write" // webhooks and email notification targets
)

// grants is the role → permission table. Auditors read everything and
// change nothing; only admins manage people and credentials.
var grants = map[Role][]Permission{
	RoleAdmin: {OrgRead, OrgCreate, UserRead, UserWrite, TokenRead, TokenWrite, AuditRead,
		ProductRead, ProductWrite, DeviceRead, DeviceWrite, EnrollWrite, ReleaseRead, ReleaseWrite, VulnRead, VulnWrite,
		ReportRead, ReportWrite, RiskAccept, AdvisoryWrite, SubscriptionRead, SubscriptionWrite},
	RoleReleaseManager: {OrgRead, ProductRead, ProductWrite, DeviceRead, ReleaseRead, ReleaseWrite, VulnRead,
		SubscriptionRead},
	RoleSecurityOfficer: {OrgRead, AuditRead, ProductRead, DeviceRead, ReleaseRead, VulnRead, VulnWrite,
		ReportRead, ReportWrite, RiskAccept, AdvisoryWrite, SubscriptionRead, SubscriptionWrite},
	RoleOperator: {OrgRead, ProductRead, DeviceRead, DeviceWrite, EnrollWrite, ReleaseRead, VulnRead,
		SubscriptionRead, SubscriptionWrite},
	RoleAuditor: {OrgRead, UserRead, TokenRead, AuditRead, ProductRead, DeviceRead, ReleaseRead, VulnRead,
		ReportRead, SubscriptionRead},
}

// Valid reports whether r is a known role.
func (r Role) Valid() bool { _, ok := grants[r]; return ok }

// Can reports whether r grants p.
func (r Role) Can(p Permission) bool { return slices.Contains(grants[r], p) }

// ParseRole validates a role name from input.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if !r.Valid() {
		return "", problem.InvalidField("role", "unknown role %q; use one of %v", s, Roles)
	}
	return r, nil
}

// ActorKind says what kind of principal acted.
type ActorKind string

const (
	ActorToken  ActorKind = "token"  // an API token (a person or a script)
	ActorDevice ActorKind = "device" // a device over the device API
	ActorSystem ActorKind = "system" // Steward itself (bootstrap, scheduler, CLI on the host)
)

// Actor is who made a change, as recorded in the audit log.
type Actor struct {
	Kind ActorKind `json:"kind" enum:"token,device,system"`
	ID   string    `json:"id"`
	// Name is a human label captured at the time (token name, user email).
	Name string `json:"name,omitempty"`
}

// System is the actor for changes Steward makes on its own.
func System(name string) Actor { return Actor{Kind: ActorSystem, ID: "steward", Name: name} }

// Principal is an authenticated caller acting within one organization.
type Principal struct {
	OrgID   string
	OrgSlug string
	// Instance is set for the organization that operates this Steward
	// installation; its admins may create and list organizations.
	Instance bool
	Role     Role
	// UserID is the person behind the credential, empty for service tokens.
	UserID string
	Actor  Actor
}

// Require returns a Forbidden error unless the principal holds perm.
func (p Principal) Require(perm Permission) error {
	if !p.Role.Can(perm) {
		return problem.Forbidden("role %s may not %s", p.Role, describe(perm))
	}
	if perm == OrgCreate && !p.Instance {
		return problem.Forbidden("only admins of the instance organization may create organizations")
	}
	return nil
}

func describe(p Permission) string {
	return fmt.Sprintf("do %s", p)
}
