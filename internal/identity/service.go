package identity

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/steward-iot/steward/agent"
	agentid "github.com/steward-iot/steward/agent/identity"
	"github.com/steward-iot/steward/agent/proto"
	"github.com/steward-iot/steward/internal/access"
	"github.com/steward-iot/steward/internal/audit"
	"github.com/steward-iot/steward/internal/clock"
	"github.com/steward-iot/steward/internal/id"
	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/paging"
	"github.com/steward-iot/steward/internal/problem"
)

const (
	// DeviceTokenTTL is the life of a device bearer token. Status changes
	// do not wait for it: every request reads the device's status.
	DeviceTokenTTL = time.Hour
	// PendingRetry is how long a pending device waits between tries.
	PendingRetry = 60 * time.Second

	enrollmentSecretPrefix = "set_"
	tokenMACSecret         = "device-token-mac"
)

// Service implements device enrollment, authentication and status changes.
type Service struct {
	store  Store
	clock  clock.Clock
	tokens deviceTokens
}

// NewService loads (or creates) the device-token key shared by replicas.
func NewService(ctx context.Context, s Store, c clock.Clock) (*Service, error) {
	if c == nil {
		c = clock.Real
	}
	var fresh [32]byte
	_, _ = rand.Read(fresh[:])
	var key string
	err := s.Write(ctx, func(tx Tx) error {
		var err error
		key, err = tx.ServerSecret(ctx, tokenMACSecret, hex.EncodeToString(fresh[:]), c.Now())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("device token key: %w", err)
	}
	raw, err := hex.DecodeString(key)
	if err != nil || len(raw) < 32 {
		return nil, errors.New("device token key in server_secrets is damaged: delete the row to rotate it (devices re-authenticate)")
	}
	return &Service{store: s, clock: c, tokens: deviceTokens{key: raw}}, nil
}

func hashSecret(s string) string {
	sum := sha256.Sum256([]byte(strings.TrimSpace(s)))
	return hex.EncodeToString(sum[:])
}

// CreateEnrollmentTokenRequest makes an enrollment token.
type CreateEnrollmentTokenRequest struct {
	Name      string `json:"name"`
	Product   string `json:"product,omitempty" doc:"product slug the token is limited to"`
	MaxUses   int    `json:"max_uses,omitempty" doc:"default 1; at most 1000000"`
	ExpiresIn string `json:"expires_in,omitempty" doc:"Go duration, default 168h (7 days), at most 8760h"`
}

// CreatedEnrollmentToken carries the secret, shown once.
type CreatedEnrollmentToken struct {
	EnrollmentToken
	Secret string `json:"secret,omitempty" doc:"pass to the agent as --enroll-token; shown only here"`
}

// CreateEnrollmentToken mints a token that enrolls devices as active.
func (s *Service) CreateEnrollmentToken(ctx context.Context, p access.Principal, req CreateEnrollmentTokenRequest) (CreatedEnrollmentToken, error) {
	if err := p.Require(access.EnrollWrite); err != nil {
		return CreatedEnrollmentToken{}, err
	}
	if strings.TrimSpace(req.Name) == "" || len(req.Name) > 200 {
		return CreatedEnrollmentToken{}, problem.InvalidField("name", "must be 1-200 characters")
	}
	if req.MaxUses == 0 {
		req.MaxUses = 1
	}
	if req.MaxUses < 1 || req.MaxUses > 1_000_000 {
		return CreatedEnrollmentToken{}, problem.InvalidField("max_uses", "must be between 1 and 1000000")
	}
	ttl := 7 * 24 * time.Hour
	if req.ExpiresIn != "" {
		d, err := time.ParseDuration(req.ExpiresIn)
		if err != nil || d <= 0 || d > 365*24*time.Hour {
			return CreatedEnrollmentToken{}, problem.InvalidField("expires_in", "%q is not a duration between 1s and 8760h", req.ExpiresIn)
		}
		ttl = d
	}
	var b [32]byte
	_, _ = rand.Read(b[:])
	secret := enrollmentSecretPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	now := s.clock.Now()
	t := EnrollmentToken{ID: id.New(), OrgID: p.OrgID, Name: req.Name, MaxUses: req.MaxUses, CreatedAt: now,
		CreatedBy: p.Actor.ID, ExpiresAt: now.Add(ttl)}
	err := s.store.Write(ctx, func(tx Tx) error {
		if req.Product != "" {
			prod, err := tx.ProductBySlug(ctx, p.OrgID, req.Product)
			if problem.Is(err, problem.KindNotFound) {
				return problem.InvalidField("product", "no product %q in this organization", req.Product)
			} else if err != nil {
				return err
			}
			t.ProductID = prod.ID
		}
		if err := tx.InsertEnrollmentToken(ctx, t, hashSecret(secret)); err != nil {
			return err
		}
		_, err := tx.AppendAudit(ctx, audit.Record{OrgID: p.OrgID, Actor: p.Actor, Action: "enrollment_token.create",
			TargetType: "enrollment_token", TargetID: t.ID,
			Details: map[string]any{"name": t.Name, "max_uses": t.MaxUses, "product_id": t.ProductID, "expires_at": t.ExpiresAt}})
		return err
	})
	return CreatedEnrollmentToken{EnrollmentToken: t, Secret: secret}, err
}

// ListEnrollmentTokens lists the organization's enrollment tokens.
func (s *Service) ListEnrollmentTokens(ctx context.Context, p access.Principal, after string, limit int) ([]EnrollmentToken, string, error) {
	if err := p.Require(access.DeviceRead); err != nil {
		return nil, "", err
	}
	return paging.List(ctx, s.store.Read, limit, func(tx Tx, limit int) ([]EnrollmentToken, error) {
		return tx.ListEnrollmentTokens(ctx, p.OrgID, after, limit)
	}, func(t EnrollmentToken) string { return t.ID })
}

// RevokeEnrollmentToken stops a token from enrolling more devices.
func (s *Service) RevokeEnrollmentToken(ctx context.Context, p access.Principal, tokenID string) (EnrollmentToken, error) {
	if err := p.Require(access.EnrollWrite); err != nil {
		return EnrollmentToken{}, err
	}
	var t EnrollmentToken
	err := s.store.Write(ctx, func(tx Tx) error {
		var err error
		if t, err = tx.EnrollmentTokenByID(ctx, p.OrgID, tokenID); err != nil {
			return err
		}
		if t.RevokedAt != nil {
			return problem.Conflict("enrollment token %s was already revoked", t.ID)
		}
		now := s.clock.Now()
		if err := tx.RevokeEnrollmentToken(ctx, p.OrgID, tokenID, now); err != nil {
			return err
		}
		t.RevokedAt = &now
		_, err = tx.AppendAudit(ctx, audit.Record{OrgID: p.OrgID, Actor: p.Actor, Action: "enrollment_token.revoke",
			TargetType: "enrollment_token", TargetID: t.ID, Details: map[string]any{"name": t.Name}})
		return err
	})
	return t, err
}

// PreauthorizeRequest lists serials and key ids that may go active at
// enrollment without a token.
type PreauthorizeRequest struct {
	Product string   `json:"product,omitempty" doc:"product slug the devices must be"`
	Serials []string `json:"serials,omitempty"`
	KeyIDs  []string `json:"key_ids,omitempty" doc:"hex SHA-256 of the device's PKIX public key"`
}

// Preauthorize records pre-authorized serials and keys.
func (s *Service) Preauthorize(ctx context.Context, p access.Principal, req PreauthorizeRequest) ([]Preauthorization, error) {
	if err := p.Require(access.EnrollWrite); err != nil {
		return nil, err
	}
	if n := len(req.Serials) + len(req.KeyIDs); n == 0 || n > 10_000 {
		return nil, problem.Invalid("give 1 to 10000 serials or key_ids")
	}
	var out []Preauthorization
	err := s.store.Write(ctx, func(tx Tx) error {
		productID := ""
		if req.Product != "" {
			prod, err := tx.ProductBySlug(ctx, p.OrgID, req.Product)
			if problem.Is(err, problem.KindNotFound) {
				return problem.InvalidField("product", "no product %q in this organization", req.Product)
			} else if err != nil {
				return err
			}
			productID = prod.ID
		}
		add := func(kind, v string) error {
			if v == "" || len(v) > 128 || strings.ContainsFunc(v, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
				return problem.InvalidField(kind+"s", "%q must be 1-128 printable ASCII characters without spaces", v)
			}
			if kind == "key" && !isHex64(v) {
				return problem.InvalidField("key_ids", "%q is not a 64-character lowercase hex key id", v)
			}
			pa := Preauthorization{OrgID: p.OrgID, Kind: kind, Value: v, ProductID: productID, CreatedAt: s.clock.Now()}
			out = append(out, pa)
			return tx.InsertPreauthorization(ctx, pa)
		}
		for _, v := range req.Serials {
			if err := add("serial", v); err != nil {
				return err
			}
		}
		for _, v := range req.KeyIDs {
			if err := add("key", v); err != nil {
				return err
			}
		}
		_, err := tx.AppendAudit(ctx, audit.Record{OrgID: p.OrgID, Actor: p.Actor, Action: "device.preauthorize",
			TargetType: "org", TargetID: p.OrgID, Details: map[string]any{"serials": req.Serials, "key_ids": req.KeyIDs, "product_id": productID}})
		return err
	})
	return out, err
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// decodeSigned parses a signed device request body strictly.
func decodeSigned(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return problem.Invalid("malformed request body: %v", strings.TrimPrefix(err.Error(), "json: "))
	}
	if _, err := dec.Token(); err != io.EOF {
		return problem.Invalid("the request body has data after the JSON object")
	}
	return nil
}

func decodeSignature(sig string) ([]byte, error) {
	if sig == "" {
		return nil, problem.Unauthenticated("the %s header is missing: sign the request body with the device key", proto.SignatureHeader).WithCode(proto.CodeBadSignature)
	}
	b, err := base64.StdEncoding.DecodeString(sig)
	if err != nil || len(b) > 256 {
		return nil, problem.Unauthenticated("the %s header is not a base64 signature", proto.SignatureHeader).WithCode(proto.CodeBadSignature)
	}
	return b, nil
}

func (s *Service) checkSkew(ts time.Time) error {
	now := s.clock.Now()
	if ts.IsZero() || ts.Before(now.Add(-proto.MaxClockSkew)) || ts.After(now.Add(proto.MaxClockSkew)) {
		return problem.Unauthenticated("the request timestamp %s is more than %s from server time %s: fix the device clock",
			ts.Format(time.RFC3339), proto.MaxClockSkew, now.Format(time.RFC3339)).WithCode(proto.CodeClockSkew)
	}
	return nil
}

func validIdentityString(field, v string, max int) error {
	if v == "" || len(v) > max || strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return problem.InvalidField(field, "must be 1-%d characters without control characters", max)
	}
	return nil
}

// Enroll registers a device key. The body must be signed by that key, so a
// device can only enroll a key it holds. Enrolling the same key again
// returns its current status and changes nothing.
func (s *Service) Enroll(ctx context.Context, body []byte, signature string) (proto.EnrollResponse, error) {
	var req proto.EnrollRequest
	if err := decodeSigned(body, &req); err != nil {
		return proto.EnrollResponse{}, err
	}
	sig, err := decodeSignature(signature)
	if err != nil {
		return proto.EnrollResponse{}, err
	}
	if req.ProtocolVersion < 1 || req.ProtocolVersion > agent.ProtocolVersion {
		return proto.EnrollResponse{}, problem.InvalidField("protocol_version", "%d is not supported; this server speaks 1..%d", req.ProtocolVersion, agent.ProtocolVersion)
	}
	for field, v := range map[string]string{"hardware_id": req.HardwareID, "serial": req.Serial} {
		if err := validIdentityString(field, v, 128); err != nil {
			return proto.EnrollResponse{}, err
		}
	}
	pub, alg, err := agentid.ParsePublicKeyPEM([]byte(req.PublicKeyPEM))
	if err != nil {
		return proto.EnrollResponse{}, problem.InvalidField("public_key_pem", "%v", err)
	}
	if string(alg) != req.Algorithm {
		return proto.EnrollResponse{}, problem.InvalidField("algorithm", "the key is %s, not %q", alg, req.Algorithm)
	}
	if err := agentid.Verify(pub, body, sig); err != nil {
		return proto.EnrollResponse{}, problem.Unauthenticated("the signature does not match the enclosed public key").WithCode(proto.CodeBadSignature)
	}
	if err := s.checkSkew(req.Timestamp); err != nil {
		return proto.EnrollResponse{}, err
	}
	keyID, err := agentid.PublicKeyID(pub)
	if err != nil {
		return proto.EnrollResponse{}, problem.InvalidField("public_key_pem", "%v", err)
	}
	var resp proto.EnrollResponse
	err = s.store.Write(ctx, func(tx Tx) error {
		if d, err := tx.DeviceByKeyID(ctx, keyID); err == nil {
			resp = enrollResponse(d)
			return nil
		} else if !problem.Is(err, problem.KindNotFound) {
			return err
		}
		d, tok, err := s.admit(ctx, tx, req, keyID)
		if err != nil {
			return err
		}
		if existing, err := tx.DeviceBySerial(ctx, d.OrgID, d.Serial); err == nil {
			return problem.Conflict("serial %q is already enrolled with another key (device %s); an operator must revoke or decommission it first", d.Serial, existing.ID)
		} else if !problem.Is(err, problem.KindNotFound) {
			return err
		}
		if err := tx.InsertDevice(ctx, d); err != nil {
			return err
		}
		// The token's row is hot (a whole factory line shares it): count
		// the use late so its lock is held only to commit.
		if tok != nil {
			ok, err := tx.UseEnrollmentToken(ctx, tok.ID)
			if err != nil {
				return err
			}
			if !ok {
				return problem.Unauthenticated("the enrollment token has no uses left")
			}
		}
		if _, err := tx.AppendAudit(ctx, audit.Record{OrgID: d.OrgID, Actor: access.Actor{Kind: access.ActorDevice, ID: d.ID, Name: d.Serial},
			Action: "device.enroll", TargetType: "device", TargetID: d.ID,
			Details: map[string]any{"serial": d.Serial, "key_id": d.KeyID, "product_id": d.ProductID, "status": d.Status, "via": d.EnrolledVia}}); err != nil {
			return err
		}
		resp = enrollResponse(d)
		return nil
	})
	return resp, err
}

func enrollResponse(d inventory.Device) proto.EnrollResponse {
	r := proto.EnrollResponse{DeviceID: d.ID, Status: d.Status}
	if d.Status == proto.StatusPending {
		r.RetryAfterSeconds = int(PendingRetry / time.Second)
	}
	return r
}

// admit decides the org, product and initial status of a new device.
func (s *Service) admit(ctx context.Context, tx Tx, req proto.EnrollRequest, keyID string) (inventory.Device, *EnrollmentToken, error) {
	now := s.clock.Now()
	d := inventory.Device{ID: id.New(), Serial: req.Serial, KeyID: keyID, Algorithm: req.Algorithm,
		PublicKeyPEM: req.PublicKeyPEM, Status: proto.StatusPending, EnrolledVia: "pending", CreatedAt: now, StatusChangedAt: now}
	var tok *EnrollmentToken
	if req.EnrollmentToken != "" {
		t, err := tx.EnrollmentTokenByHash(ctx, hashSecret(req.EnrollmentToken))
		switch {
		case problem.Is(err, problem.KindNotFound):
			return d, nil, problem.Unauthenticated("the enrollment token is not valid")
		case err != nil:
			return d, nil, err
		case t.RevokedAt != nil:
			return d, nil, problem.Unauthenticated("the enrollment token was revoked")
		case !now.Before(t.ExpiresAt):
			return d, nil, problem.Unauthenticated("the enrollment token expired at %s", t.ExpiresAt.Format(time.RFC3339))
		}
		tok = &t
		d.OrgID, d.Status, d.EnrolledVia = t.OrgID, proto.StatusActive, "enrollment-token:"+t.ID
	} else {
		if req.Org == "" {
			return d, nil, problem.InvalidField("org", "give the owner organization's slug, or an enrollment token")
		}
		org, err := tx.OrgBySlug(ctx, req.Org)
		if err != nil {
			return d, nil, err
		}
		d.OrgID = org.ID
	}
	prod, err := tx.ProductByHardwareID(ctx, d.OrgID, req.HardwareID)
	if problem.Is(err, problem.KindNotFound) {
		return d, nil, problem.InvalidField("hardware_id", "no product with hardware id %q in this organization", req.HardwareID)
	} else if err != nil {
		return d, nil, err
	}
	if tok != nil && tok.ProductID != "" && tok.ProductID != prod.ID {
		return d, nil, problem.InvalidField("hardware_id", "this enrollment token is for another product, not %q", req.HardwareID)
	}
	d.ProductID = prod.ID
	if tok == nil {
		for _, kv := range [][2]string{{"serial", req.Serial}, {"key", keyID}} {
			pa, err := tx.Preauthorized(ctx, d.OrgID, kv[0], kv[1])
			if err == nil && (pa.ProductID == "" || pa.ProductID == prod.ID) {
				d.Status, d.EnrolledVia = proto.StatusActive, "preauthorized:"+kv[0]
				break
			} else if err != nil && !problem.Is(err, problem.KindNotFound) {
				return d, nil, err
			}
		}
	}
	return d, tok, nil
}

// Authenticate checks a signed auth request and issues a device token. The
// timestamp must be newer than the device's previous successful auth, so a
// captured request cannot be replayed even within the skew window.
func (s *Service) Authenticate(ctx context.Context, body []byte, signature string) (proto.AuthResponse, error) {
	var req proto.AuthRequest
	if err := decodeSigned(body, &req); err != nil {
		return proto.AuthResponse{}, err
	}
	sig, err := decodeSignature(signature)
	if err != nil {
		return proto.AuthResponse{}, err
	}
	if !isHex64(req.KeyID) {
		return proto.AuthResponse{}, problem.InvalidField("key_id", "must be the 64-character hex key id")
	}
	var resp proto.AuthResponse
	err = s.store.Write(ctx, func(tx Tx) error {
		d, err := tx.DeviceByKeyID(ctx, req.KeyID)
		if problem.Is(err, problem.KindNotFound) {
			return problem.Unauthenticated("no device is enrolled with key %s: enroll first", req.KeyID).WithCode(proto.CodeUnknownDevice)
		} else if err != nil {
			return err
		}
		pub, _, err := agentid.ParsePublicKeyPEM([]byte(d.PublicKeyPEM))
		if err != nil {
			return fmt.Errorf("stored key of device %s: %w", d.ID, err)
		}
		if err := agentid.Verify(pub, body, sig); err != nil {
			return problem.Unauthenticated("the signature does not verify with the enrolled key").WithCode(proto.CodeBadSignature)
		}
		if err := s.checkSkew(req.Timestamp); err != nil {
			return err
		}
		if err := usable(d); err != nil {
			return err
		}
		fresh, err := tx.AdvanceDeviceAuth(ctx, d.ID, clock.Norm(req.Timestamp))
		if err != nil {
			return err
		}
		if !fresh {
			return problem.Unauthenticated("this auth request is not newer than the device's last one: replayed or the clock went back").WithCode(proto.CodeReplay)
		}
		exp := s.clock.Now().Add(DeviceTokenTTL)
		resp = proto.AuthResponse{DeviceID: d.ID, Token: s.tokens.mint(d.ID, exp), ExpiresAt: exp}
		return nil
	})
	return resp, err
}

// usable refuses devices whose status forbids talking to the server.
func usable(d inventory.Device) error {
	switch d.Status {
	case proto.StatusActive, proto.StatusQuarantined:
		return nil
	case proto.StatusPending:
		return problem.Forbidden("the device is pending approval; retry in %s", PendingRetry).WithCode(proto.CodeDevicePending)
	case proto.StatusRejected:
		return problem.Forbidden("the device was rejected by an operator").WithCode(proto.CodeDeviceRejected)
	}
	return problem.Forbidden("the device is %s: its credentials are no longer accepted", d.Status).WithCode(proto.CodeDeviceRevoked)
}

// DeviceFromToken resolves a bearer token to the device, reading its
// status now so that revocation applies to the very next request.
func (s *Service) DeviceFromToken(ctx context.Context, token string) (inventory.Device, error) {
	devID, ok := s.tokens.parse(token, s.clock.Now())
	if !ok {
		return inventory.Device{}, problem.Unauthenticated("the device token is invalid or expired: authenticate again").WithCode(proto.CodeTokenInvalid)
	}
	var d inventory.Device
	err := s.store.Read(ctx, func(tx Tx) error {
		var err error
		d, err = tx.DeviceForAuth(ctx, devID)
		return err
	})
	if problem.Is(err, problem.KindNotFound) {
		return d, problem.Unauthenticated("the device no longer exists").WithCode(proto.CodeTokenInvalid)
	}
	if err != nil {
		return d, err
	}
	return d, usable(d)
}

// transitions lists the statuses each operator action may start from.
var transitions = map[string]struct {
	to   string
	from []string
}{
	"accept": {proto.StatusActive, []string{proto.StatusPending, proto.StatusRejected}},
	"reject": {proto.StatusRejected, []string{proto.StatusPending, proto.StatusActive}},
	"revoke": {proto.StatusRevoked, []string{proto.StatusPending, proto.StatusActive, proto.StatusQuarantined}},
}

// StatusResult is the outcome for one device of a bulk status change.
type StatusResult struct {
	DeviceID string `json:"device_id"`
	Status   string `json:"status,omitempty"`
	Error    string `json:"error,omitempty"`
}

// ChangeStatus applies an operator action (accept, reject, revoke) to each
// device. Each device succeeds or fails on its own, in its own
// transaction, so one bad id does not block the rest.
func (s *Service) ChangeStatus(ctx context.Context, p access.Principal, action string, ids []string) ([]StatusResult, error) {
	if err := p.Require(access.DeviceWrite); err != nil {
		return nil, err
	}
	tr, ok := transitions[action]
	if !ok {
		return nil, problem.Invalid("unknown action %q: use accept, reject or revoke", action)
	}
	if len(ids) == 0 || len(ids) > 1000 {
		return nil, problem.InvalidField("device_ids", "give 1 to 1000 device ids")
	}
	out := make([]StatusResult, 0, len(ids))
	for _, devID := range ids {
		r := StatusResult{DeviceID: devID}
		err := s.store.Write(ctx, func(tx Tx) error {
			d, err := tx.DeviceByID(ctx, p.OrgID, devID)
			if err != nil {
				return err
			}
			if d.Status == tr.to {
				r.Status = d.Status
				return nil
			}
			allowed := false
			for _, f := range tr.from {
				allowed = allowed || d.Status == f
			}
			if !allowed {
				return problem.Conflict("cannot %s a %s device", action, d.Status)
			}
			if err := tx.SetDeviceStatus(ctx, p.OrgID, d.ID, tr.to, s.clock.Now()); err != nil {
				return err
			}
			r.Status = tr.to
			_, err = tx.AppendAudit(ctx, audit.Record{OrgID: p.OrgID, Actor: p.Actor, Action: "device." + action,
				TargetType: "device", TargetID: d.ID, Details: map[string]any{"from": d.Status, "to": tr.to, "serial": d.Serial}})
			return err
		})
		if err != nil {
			var pe *problem.Error
			if !errors.As(err, &pe) || pe.Kind == problem.KindInternal {
				return out, err
			}
			r.Error = pe.Detail
		}
		out = append(out, r)
	}
	return out, nil
}
