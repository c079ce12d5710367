package api_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/cjson"

	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/advisory"
	"github.com/steward-iot/steward/internal/disclosure"
	"github.com/steward-iot/steward/internal/identity"
	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/notify"
	"github.com/steward-iot/steward/internal/release"
	"github.com/steward-iot/steward/internal/rollout"
	"github.com/steward-iot/steward/internal/store"
	"github.com/steward-iot/steward/internal/store/storetest"
	"github.com/steward-iot/steward/internal/tenancy"
	"github.com/steward-iot/steward/internal/trust"
	"github.com/steward-iot/steward/internal/vuln"
	"github.com/steward-iot/steward/internal/vuln/scoring"
)

const (
	admin    = access.RoleAdmin
	relmgr   = access.RoleReleaseManager
	security = access.RoleSecurityOfficer
	operator = access.RoleOperator
	auditor  = access.RoleAuditor
)

// allowed is written out by hand, not derived from access's table, so a
// change to either one shows up here as a failure to look at.
var allowed = map[string][]access.Role{
	"whoami":      {admin, relmgr, security, operator, auditor},
	"listOrgs":    {admin, relmgr, security, operator, auditor},
	"createOrg":   {}, // instance admins only: checked separately
	"getOrg":      {admin, relmgr, security, operator, auditor},
	"listUsers":   {admin, auditor},
	"createUser":  {admin},
	"getUser":     {admin, auditor},
	"disableUser": {admin},
	"listTokens":  {admin, auditor},
	"createToken": {admin},
	"getToken":    {admin, auditor},
	"revokeToken": {admin},
	"listAudit":   {admin, security, auditor},

	"listProducts":          {admin, relmgr, security, operator, auditor},
	"createProduct":         {admin, relmgr},
	"getProduct":            {admin, relmgr, security, operator, auditor},
	"productVersions":       {admin, relmgr, security, operator, auditor},
	"listEnrollmentTokens":  {admin, relmgr, security, operator, auditor},
	"createEnrollmentToken": {admin, operator},
	"revokeEnrollmentToken": {admin, operator},
	"preauthorize":          {admin, operator},
	"listDevices":           {admin, relmgr, security, operator, auditor},
	"exportDevices":         {admin, relmgr, security, operator, auditor},
	"getDevice":             {admin, relmgr, security, operator, auditor},
	"setDeviceTags":         {admin, operator},
	"acceptDevices":         {admin, operator},
	"rejectDevices":         {admin, operator},
	"revokeDevices":         {admin, operator},
	"listGroups":            {admin, relmgr, security, operator, auditor},
	"createGroup":           {admin, operator},
	"addGroupMembers":       {admin, operator},

	"uploadArtifact":    {admin, relmgr},
	"listArtifacts":     {admin, relmgr, security, operator, auditor},
	"getArtifact":       {admin, relmgr, security, operator, auditor},
	"downloadArtifact":  {admin, relmgr, security, operator, auditor},
	"createRelease":     {admin, relmgr},
	"listReleases":      {admin, relmgr, security, operator, auditor},
	"getRelease":        {admin, relmgr, security, operator, auditor},
	"releaseComponents": {admin, relmgr, security, operator, auditor},

	"importOSV":                 {admin, security},
	"listVulnerabilities":       {admin, relmgr, security, operator, auditor},
	"getVulnerability":          {admin, relmgr, security, operator, auditor},
	"vulnerabilityAffected":     {admin, relmgr, security, operator, auditor},
	"vulnerabilityWorklist":     {admin, relmgr, security, operator, auditor},
	"transitionVulnerability":   {admin, security},
	"setVulnerabilityOwnership": {admin, security},
	"assessVulnerability":       {admin, security},
	"acceptVulnerabilityRisk":   {admin, security},
	"revokeVulnerabilityRisk":   {admin, security},
	"submitCRAReport":           {admin, security},

	"tufStatus":       {admin, relmgr, security, operator, auditor},
	"initTUF":         {admin, relmgr},
	"tufUnsigned":     {admin, relmgr, security, operator, auditor},
	"addTUFSignature": {admin, relmgr},
	"rotateTUFRoot":   {admin, relmgr},
	"renewTUFTargets": {admin, relmgr},

	"assignDevice":        {admin, operator},
	"getAssignment":       {admin, relmgr, security, operator, auditor},
	"unassignDevice":      {admin, operator},
	"deviceUpdateHistory": {admin, relmgr, security, operator, auditor},
	"directorRoot":        {admin, relmgr, security, operator, auditor},
	"createRollout":       {admin, operator},
	"listRollouts":        {admin, relmgr, security, operator, auditor},
	"getRollout":          {admin, relmgr, security, operator, auditor},
	"rolloutDevices":      {admin, relmgr, security, operator, auditor},
	"planRollout":         {admin, relmgr, security, operator, auditor},
	"rolloutPlan":         {admin, relmgr, security, operator, auditor},
	"pauseRollout":        {admin, operator},
	"resumeRollout":       {admin, operator},
	"cancelRollout":       {admin, operator},
	"setGroupWindow":      {admin, operator},
	"releaseSUIT":         {admin, relmgr, security, operator, auditor},
	"suitKey":             {admin, relmgr, security, operator, auditor},

	"createSubscription":       {admin, security, operator},
	"listSubscriptions":        {admin, relmgr, security, operator, auditor},
	"getSubscription":          {admin, relmgr, security, operator, auditor},
	"updateSubscription":       {admin, security, operator},
	"deleteSubscription":       {admin, security, operator},
	"rotateSubscriptionSecret": {admin, security, operator},
	"testSubscription":         {admin, security, operator},
	"listDeliveries":           {admin, relmgr, security, operator, auditor},
	"getDelivery":              {admin, relmgr, security, operator, auditor},

	"listReports":               {admin, security, auditor},
	"getReport":                 {admin, security, auditor},
	"acknowledgeReport":         {admin, security},
	"replyReport":               {admin, security},
	"setReportStage":            {admin, security},
	"linkReportVulnerability":   {admin, security},
	"unlinkReportVulnerability": {admin, security},

	"createAdvisory":    {admin, security},
	"listAdvisories":    {admin, relmgr, security, operator, auditor},
	"getAdvisory":       {admin, relmgr, security, operator, auditor},
	"updateAdvisory":    {admin, security},
	"publishAdvisory":   {admin, security},
	"advisoryDocument":  {admin, relmgr, security, operator, auditor},
	"draftAdvisory":     {admin, security},
	"listAdvisoryKeys":  {admin, relmgr, security, operator, auditor},
	"importAdvisoryKey": {admin, security},
}

// victims are fresh objects per case, so state-changing calls have a
// target whose survival can be checked.
type victims struct {
	userID, tokenID, productID, deviceID, groupID, enrollTokenID string
	artifactID, releaseID, vulnID                                string
	tufSig                                                       trust.OfflineSignature
	deviceReleaseID                                              string // a release for the device's product
	subscriptionID, deliveryID, reportID, advisoryID             string
	acceptedVulnID, approverID                                   string // a vulnerability whose risk is accepted; a security officer
	rolloutID                                                    string // a running rollout of deviceReleaseID to groupID
}

func (e *env) newVictims(slug string, n int) victims {
	e.t.Helper()
	p := e.principal(e.tokens[slug][admin])
	u, err := e.ten.CreateUser(context.Background(), p, tenancy.CreateUserRequest{
		Email: fmt.Sprintf("victim%d@%s.example", n, slug), Name: "Victim", Role: operator})
	if err != nil {
		e.t.Fatal(err)
	}
	tok, err := e.ten.CreateToken(context.Background(), p, tenancy.CreateTokenRequest{Name: "victim", Role: operator})
	if err != nil {
		e.t.Fatal(err)
	}
	prod, err := e.inv.CreateProduct(context.Background(), p, inventory.CreateProductRequest{Slug: fmt.Sprintf("v%d", n),
		Name: "Victim", HardwareID: fmt.Sprintf("v-hw-%d", n), Capability: inventory.CapabilityNone, LinkClass: "lora"})
	if err != nil {
		e.t.Fatal(err)
	}
	g, err := e.inv.CreateGroup(context.Background(), p, inventory.CreateGroupRequest{Name: fmt.Sprintf("victims-%d", n)})
	if err != nil {
		e.t.Fatal(err)
	}
	et, err := e.ident.CreateEnrollmentToken(context.Background(), p, identity.CreateEnrollmentTokenRequest{Name: "victim"})
	if err != nil {
		e.t.Fatal(err)
	}
	art, _, err := e.rel.Upload(context.Background(), p, fmt.Sprintf("victim-%d.img", n), strings.NewReader(fmt.Sprintf("%s image %d", slug, n)), "")
	if err != nil {
		e.t.Fatal(err)
	}
	rel, err := e.rel.CreateRelease(context.Background(), p, release.CreateReleaseRequest{Product: prod.Slug, Version: "1.0.0",
		Artifacts: []release.ArtifactRef{{ID: art.ID}}})
	if err != nil {
		e.t.Fatal(err)
	}
	v, _, err := e.vul.ImportOSV(context.Background(), p, []byte(osvRecord(fmt.Sprintf("VICTIM-%d", n))))
	if err != nil {
		e.t.Fatal(err)
	}
	// The victim vulnerability is in remediation and known exploited (so
	// risk acceptance and CRA reports apply); a second one has its risk
	// accepted (so the acceptance can be revoked).
	approver, err := e.ten.CreateUser(context.Background(), p, tenancy.CreateUserRequest{
		Email: fmt.Sprintf("approver%d@%s.example", n, slug), Name: "Approver", Role: security})
	if err != nil {
		e.t.Fatal(err)
	}
	accepted, _, err := e.vul.ImportOSV(context.Background(), p, []byte(osvRecord(fmt.Sprintf("ACCEPTED-%d", n))))
	if err != nil {
		e.t.Fatal(err)
	}
	for _, ref := range []string{v.ID, accepted.ID} {
		e.toRemediation(p, ref)
	}
	if _, err := e.vul.AcceptRisk(context.Background(), p, accepted.ID, vuln.AcceptRiskRequest{ApproverID: approver.ID,
		Justification: "the port is firewalled", ExpiresAt: e.clock.Now().Add(30 * 24 * time.Hour)}); err != nil {
		e.t.Fatal(err)
	}
	deviceID := e.enrollDevice(slug, fmt.Sprintf("victim-%d", n))
	gwRel, err := e.rel.CreateRelease(context.Background(), p, release.CreateReleaseRequest{Product: "gw", Version: fmt.Sprintf("1.%d", n),
		Artifacts: []release.ArtifactRef{{ID: art.ID}}})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.rollout.Assign(context.Background(), p, deviceID, rollout.AssignRequest{ReleaseID: gwRel.ID}); err != nil {
		e.t.Fatal(err)
	}
	ro, err := e.rollout.Create(context.Background(), p, rollout.CreateRequest{ReleaseID: gwRel.ID, TargetGroupID: g.ID,
		Urgency: rollout.UrgencyScheduled})
	if err != nil {
		e.t.Fatal(err)
	}
	sub, err := e.notify.CreateSubscription(context.Background(), p, notify.CreateSubscriptionRequest{Kind: notify.KindWebhook,
		URL: fmt.Sprintf("http://127.0.0.1:9/%s/%d", slug, n), EventTypes: []string{"vulnerability.escalated"}})
	if err != nil {
		e.t.Fatal(err)
	}
	delivery, err := e.notify.SendTest(context.Background(), p, sub.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	receipt, err := e.reports.Submit(context.Background(), p.OrgID, disclosure.ReportRequest{Title: fmt.Sprintf("victim report %d", n),
		Description: "steps to reproduce"}, disclosure.SourceAPI)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.reports.LinkVulnerability(context.Background(), p, receipt.Reference, v.ID); err != nil {
		e.t.Fatal(err)
	}
	adv, err := e.advisories.CreateDraft(context.Background(), p, advisoryDraft(n))
	if err != nil {
		e.t.Fatal(err)
	}
	return victims{rolloutID: ro.ID, acceptedVulnID: accepted.ID, approverID: approver.ID, subscriptionID: sub.ID, deliveryID: delivery.ID, reportID: receipt.Reference, advisoryID: adv.ID,
		userID: u.ID, tokenID: tok.ID, productID: prod.ID, groupID: g.ID, enrollTokenID: et.ID,
		deviceID: deviceID, artifactID: art.ID, releaseID: rel.ID, vulnID: v.ID, deviceReleaseID: gwRel.ID,
		tufSig: e.tufSignature(p)}
}

// tufKey is a fixed offline key of the access matrix: 1 and 2 are root
// keys (threshold 2), 3 the targets key, 4 the key root is rotated to.
func tufKey(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

func tufPEM(seed byte) string {
	der, _ := x509.MarshalPKIXPublicKey(tufKey(seed).Public())
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// tufSignature signs the organization's staged root with the first root
// key that has not signed it yet, so allowed addTUFSignature calls succeed
// in turn: the first adds one of two signatures, the second publishes
// root version 1, which rotateTUFRoot then needs. With nothing staged it
// is still a well-formed body. An organization has one repository, so the
// TUF cases build on each other in route order (init, unsigned,
// signatures, rotate-root): run them together.
func (e *env) tufSignature(p access.Principal) trust.OfflineSignature {
	e.t.Helper()
	u, err := e.tuf.Unsigned(context.Background(), p, trust.RoleRoot)
	if err != nil {
		return trust.OfflineSignature{Role: trust.RoleRoot, Version: 1, SignedSHA256: strings.Repeat("0", 64), KeyID: "00", Sig: "00"}
	}
	canonical, err := cjson.EncodeCanonical(u.Signed)
	if err != nil {
		e.t.Fatal(err)
	}
	s, err := trust.NewSigner(trust.RoleRoot, tufKey(1))
	if err != nil {
		e.t.Fatal(err)
	}
	if slices.ContainsFunc(u.Requirements, func(r trust.SignatureRequirement) bool { return slices.Contains(r.Signed, s.KeyID()) }) {
		if s, err = trust.NewSigner(trust.RoleRoot, tufKey(2)); err != nil {
			e.t.Fatal(err)
		}
	}
	sig, err := s.Sign(canonical)
	if err != nil {
		e.t.Fatal(err)
	}
	return trust.OfflineSignature{Role: u.Role, Version: u.Version, SignedSHA256: u.SignedSHA256, KeyID: sig.KeyID,
		Sig: hex.EncodeToString(sig.Signature)}
}

// assessment is a complete assessment of an actively exploited vulnerability.
func assessment() vuln.AssessRequest {
	return vuln.AssessRequest{CVSS: []string{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}, KnownExploited: true,
		SSVC: scoring.SSVC{Exploitation: "active", Exposure: "open", Automatable: true, HumanImpact: "high"}}
}

// toRemediation assesses and confirms a vulnerability and starts its remediation.
func (e *env) toRemediation(p access.Principal, ref string) {
	e.t.Helper()
	if _, err := e.vul.Assess(context.Background(), p, ref, assessment()); err != nil {
		e.t.Fatal(err)
	}
	for _, to := range []vuln.Stage{"confirmed", "remediation"} {
		if _, err := e.vul.Transition(context.Background(), p, ref, vuln.TransitionRequest{To: to}); err != nil {
			e.t.Fatal(err)
		}
	}
}

// pathFor fills a route pattern for org slug and victims v.
func pathFor(pattern, slug string, v victims) string {
	p := strings.ReplaceAll(pattern, "{org}", slug)
	p = strings.ReplaceAll(p, "{role}", "root")
	if strings.HasSuffix(p, "/risk-acceptance/revoke") {
		return strings.ReplaceAll(p, "{id}", v.acceptedVulnID)
	}
	p = strings.ReplaceAll(p, "{delivery}", v.deliveryID)
	p = strings.ReplaceAll(p, "{vuln}", v.vulnID)
	for _, kind := range []struct{ segment, id string }{
		{"/rollouts/", v.rolloutID},
		{"/subscriptions/", v.subscriptionID}, {"/reports/", v.reportID}, {"/advisories/", v.advisoryID},
		{"/users/", v.userID}, {"/enrollment-tokens/", v.enrollTokenID}, {"/tokens/", v.tokenID},
		{"/products/", v.productID}, {"/devices/", v.deviceID}, {"/groups/", v.groupID},
		{"/artifacts/", v.artifactID}, {"/releases/", v.releaseID}, {"/vulnerabilities/", v.vulnID},
	} {
		if strings.Contains(p, kind.segment) {
			return strings.ReplaceAll(p, "{id}", kind.id)
		}
	}
	if strings.HasSuffix(p, "/artifacts") {
		return p + "?name=new.img" // uploads are named in the query
	}
	return p
}

func bodyFor(opID string, n int, v victims) any {
	switch opID {
	case "createProduct":
		return inventory.CreateProductRequest{Slug: fmt.Sprintf("new-%d", n), Name: "New", HardwareID: fmt.Sprintf("new-hw-%d", n),
			Capability: inventory.CapabilityAB, LinkClass: "wifi"}
	case "createEnrollmentToken":
		return identity.CreateEnrollmentTokenRequest{Name: "new"}
	case "preauthorize":
		return identity.PreauthorizeRequest{Serials: []string{fmt.Sprintf("pre-%d", n)}}
	case "setDeviceTags":
		return map[string]any{"tags": map[string]string{"k": "v"}}
	case "acceptDevices", "rejectDevices", "revokeDevices", "addGroupMembers":
		return map[string]any{"device_ids": []string{v.deviceID}}
	case "createGroup":
		return inventory.CreateGroupRequest{Name: fmt.Sprintf("new-%d", n)}
	case "transitionVulnerability":
		return vuln.TransitionRequest{To: "fix-released"}
	case "setVulnerabilityOwnership":
		return vuln.OwnershipRequest{OwnerID: v.approverID}
	case "assessVulnerability":
		return assessment()
	case "acceptVulnerabilityRisk":
		return vuln.AcceptRiskRequest{ApproverID: v.approverID, Justification: "compensating control",
			ExpiresAt: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}
	case "revokeVulnerabilityRisk":
		return vuln.RevokeRiskRequest{Reason: "a fix is out"}
	case "submitCRAReport":
		return vuln.CRASubmission{Report: "early-warning", Reference: "ENISA-1"}
	case "createAdvisory":
		return advisoryDraft(n)
	case "updateAdvisory":
		d := advisoryDraft(n)
		d.Title = fmt.Sprintf("Updated advisory %d", n)
		return d
	case "importAdvisoryKey":
		return advisory.ImportKeyRequest{PrivateKey: armoredKey()}
	case "createSubscription":
		return notify.CreateSubscriptionRequest{Kind: notify.KindEmail, Email: fmt.Sprintf("new%d@example.com", n), EventTypes: []string{"*"}}
	case "updateSubscription":
		return map[string]any{"description": fmt.Sprintf("changed %d", n)}
	case "acknowledgeReport":
		return disclosure.AcknowledgeRequest{Message: "thanks"}
	case "replyReport":
		return disclosure.ReplyRequest{Body: "can you share a proof of concept?"}
	case "setReportStage":
		return disclosure.StageRequest{Stage: "acknowledged"}
	case "linkReportVulnerability":
		return disclosure.LinkRequest{VulnerabilityID: v.vulnID}
	case "createRollout", "planRollout":
		return rollout.CreateRequest{ReleaseID: v.deviceReleaseID, TargetGroupID: v.groupID, Urgency: rollout.UrgencyOutOfCycle}
	case "setGroupWindow":
		return rollout.GroupWindow{Cron: "0 2 * * *", DurationSeconds: 3600, TimeZone: "Europe/Berlin"}
	case "assignDevice":
		return rollout.AssignRequest{ReleaseID: v.deviceReleaseID}
	case "importOSV":
		return osvRecord(fmt.Sprintf("NEW-%d", n))
	case "uploadArtifact":
		return fmt.Sprintf("new image %d", n)
	case "createRelease":
		return release.CreateReleaseRequest{Product: fmt.Sprintf("v%d", n%10000), Version: fmt.Sprintf("9.%d", n),
			Artifacts: []release.ArtifactRef{{ID: v.artifactID}}}
	case "createOrg":
		return tenancy.CreateOrgRequest{Slug: fmt.Sprintf("new-%d", n), Name: "New"}
	case "initTUF":
		return trust.InitRequest{RootKeys: []string{tufPEM(1), tufPEM(2)}, RootThreshold: 2, TargetsKeys: []string{tufPEM(3)}}
	case "addTUFSignature":
		return v.tufSig
	case "rotateTUFRoot":
		return trust.RotateRootRequest{RootKeys: []string{tufPEM(4)}, RootThreshold: 1}
	case "createUser":
		return tenancy.CreateUserRequest{Email: fmt.Sprintf("new%d@example.com", n), Name: "New", Role: operator}
	case "createToken":
		return tenancy.CreateTokenRequest{Name: "new", Role: operator}
	}
	return nil
}

// TestAccessMatrix walks every admin endpoint × every role × own and
// foreign organization, and asserts that forbidden calls fail with 403,
// foreign ones with 404, neither changes anything, and no response leaks
// the other tenant's identifiers.
func TestAccessMatrix(t *testing.T) {
	for _, d := range storetest.Dialects(t) {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel() // separate databases and servers
			testAccessMatrix(t, d)
		})
	}
}

func testAccessMatrix(t *testing.T, d store.Dialect) {
	e := newEnv(t, d)
	ops := e.srv.Operations()
	for _, op := range ops {
		if !op.Public {
			if _, ok := allowed[op.ID]; !ok {
				t.Errorf("route %s %s (%s) has no row in the access matrix: add one", op.Method, op.Path, op.ID)
			}
		}
	}
	// Authorization is decided in the domain services, the same on both
	// databases; what PostgreSQL adds is its own SQL for org scoping. So
	// PostgreSQL runs the matrix for the most and the least powerful roles
	// and release managers (every allowed path, forbidden ones, every
	// foreign org and object), SQLite for all five.
	roles := access.Roles
	if d == store.Postgres {
		// Release managers too: the TUF ceremony cases need two signers.
		roles = []access.Role{admin, relmgr, auditor}
	}
	n := 0
	readVictims := map[string]victims{}
	shared := func(slug string) victims {
		if _, ok := readVictims[slug]; !ok {
			readVictims[slug] = e.newVictims(slug, 90000+len(readVictims))
		}
		return readVictims[slug]
	}
	for _, op := range ops {
		if op.Public {
			continue
		}
		for _, own := range []string{"ops", "acme"} {
			other := map[string]string{"ops": "acme", "acme": "ops"}[own]
			for _, role := range roles {
				n++
				instanceAdmin := own == "ops" && role == admin
				name := fmt.Sprintf("%s/%s/%s", op.ID, own, role)
				t.Run(name, func(t *testing.T) {
					tok := e.tokens[own][role]
					may := slices.Contains(allowed[op.ID], role) || (op.ID == "createOrg" && instanceAdmin)
					// Only an allowed write changes its victims, so only it gets
					// fresh ones; every other call must change nothing (checked
					// below), so they share one set per organization, and a
					// call that did change one would fail the checks of every
					// later case too.
					mine, theirs := shared(own), shared(other)
					if may && op.Method != http.MethodGet {
						mine = e.newVictims(own, n)
					}
					foreignIDs := []string{e.orgs[other].ID, theirs.userID, theirs.tokenID, theirs.productID, theirs.deviceID, theirs.groupID,
						theirs.enrollTokenID, theirs.artifactID, theirs.releaseID, theirs.vulnID}

					// 1. Own organization, own objects.
					before := e.auditCounts()
					res := e.do(op.Method, pathFor(op.Path, own, mine), tok, bodyFor(op.ID, n, mine))
					if may {
						if res.status/100 != 2 {
							t.Fatalf("%s as %s in own org: status %d, want 2xx: %s", op.ID, role, res.status, res.body)
						}
					} else {
						if res.status != http.StatusForbidden {
							t.Fatalf("%s as %s in own org: status %d, want 403: %s", op.ID, role, res.status, res.body)
						}
						res.problem(t)
						if after := e.auditCounts(); !maps.Equal(before, after) {
							t.Fatalf("forbidden %s changed the audit log: %v → %v", op.ID, before, after)
						}
					}
					// Only instance admins may see other tenants, and only orgs.
					if !(instanceAdmin && (op.ID == "listOrgs" || op.ID == "createOrg")) {
						for _, fid := range foreignIDs {
							if strings.Contains(string(res.body), fid) {
								t.Fatalf("%s as %s@%s leaked %s of %s: %s", op.ID, role, own, fid, other, res.body)
							}
						}
					}

					if !strings.Contains(op.Path, "{org}") {
						return
					}
					// 2. The other organization in the path.
					before = e.auditCounts()
					res = e.do(op.Method, pathFor(op.Path, other, theirs), tok, bodyFor(op.ID, n+10000, theirs))
					if op.ID == "getOrg" && instanceAdmin {
						if res.status != http.StatusOK {
							t.Fatalf("instance admin getOrg(%s): %d", other, res.status)
						}
					} else {
						if res.status != http.StatusNotFound {
							t.Fatalf("%s as %s@%s on org %s: status %d, want 404: %s", op.ID, role, own, other, res.status, res.body)
						}
						res.problem(t)
						for _, fid := range foreignIDs {
							if strings.Contains(string(res.body), fid) {
								t.Fatalf("404 for foreign org leaked %s: %s", fid, res.body)
							}
						}
					}
					if after := e.auditCounts(); !maps.Equal(before, after) {
						t.Fatalf("%s on a foreign org changed the audit log: %v → %v", op.ID, before, after)
					}

					// 3. Own org in the path, another tenant's object id (in
					// the path, or in the body of bulk device actions).
					if strings.Contains(op.Path, "{id}") || strings.HasSuffix(op.ID, "Devices") && op.Method == "POST" {
						before = e.auditCounts()
						res = e.do(op.Method, pathFor(op.Path, own, theirs), tok, bodyFor(op.ID, n+20000, theirs))
						if !strings.Contains(op.Path, "{id}") && res.status == http.StatusOK {
							res.status = http.StatusNotFound // bulk: a 200 whose per-device result refuses it
							if !strings.Contains(string(res.body), "not found") {
								t.Fatalf("%s with %s's device: %s", op.ID, other, res.body)
							}
						}
						want := http.StatusNotFound
						if !may {
							want = http.StatusForbidden
						}
						if res.status != want {
							t.Fatalf("%s as %s@%s with %s's object: status %d, want %d: %s", op.ID, role, own, other, res.status, want, res.body)
						}
						if after := e.auditCounts(); !maps.Equal(before, after) {
							t.Fatalf("%s on a foreign object changed the audit log", op.ID)
						}
					}
					// The other tenant's victims are untouched.
					theirAdmin := e.principal(e.tokens[other][admin])
					if u, err := e.ten.GetUser(context.Background(), theirAdmin, theirs.userID); err != nil || u.DisabledAt != nil {
						t.Fatalf("foreign user changed: %+v %v", u, err)
					}
					if tk, err := e.ten.GetToken(context.Background(), theirAdmin, theirs.tokenID); err != nil || tk.RevokedAt != nil {
						t.Fatalf("foreign token changed: %+v %v", tk, err)
					}
					if d, err := e.inv.GetDevice(context.Background(), theirAdmin, theirs.deviceID); err != nil || d.Status != "pending" || len(d.Tags) != 0 {
						t.Fatalf("foreign device changed: %+v %v", d, err)
					}
				})
			}
		}
	}
}

// TestListOrgsVisibility checks what each caller sees in GET /api/v1/orgs.
func TestListOrgsVisibility(t *testing.T) {
	e := newEnv(t, store.SQLite)
	for _, slug := range []string{"ops", "acme"} {
		for _, role := range access.Roles {
			var page struct{ Items []tenancy.Org }
			res := e.do("GET", "/api/v1/orgs", e.tokens[slug][role], nil)
			res.json(t, &page)
			var got []string
			for _, o := range page.Items {
				got = append(got, o.Slug)
			}
			want := []string{slug}
			if slug == "ops" && role == admin {
				want = []string{"ops", "acme"}
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s@%s sees orgs %v, want %v", role, slug, got, want)
			}
		}
	}
	// An unknown token sees nothing at all.
	if res := e.do("GET", "/api/v1/orgs", "stw_"+strings.Repeat("A", 43), nil); res.status != http.StatusUnauthorized {
		t.Fatalf("unknown token: %d", res.status)
	}
}

// osvRecord is a minimal valid OSV record.
func osvRecord(id string) string {
	return `{"id":"` + id + `","modified":"2026-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"Go","name":"example.com/m"},` +
		`"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.2.3"}]}]}]}`
}
