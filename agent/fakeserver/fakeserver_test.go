package fakeserver_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/steward-iot/steward/agent"
	"github.com/steward-iot/steward/agent/fakeserver"
	"github.com/steward-iot/steward/agent/identity"
	"github.com/steward-iot/steward/agent/proto"
)

// The fake must refuse what the real server refuses, or agent tests
// against it prove nothing. These requests are built by hand.

type rawClient struct {
	t   *testing.T
	url string
	id  *identity.Identity
}

// post sends v, signed with sign (nil: unsigned) and bearer (if set), and
// returns the status and the problem code, if any.
func (c *rawClient) post(path string, v any, sign func([]byte) []byte, bearer string, out any) (int, string) {
	c.t.Helper()
	body, _ := json.Marshal(v)
	req, _ := http.NewRequest(http.MethodPost, c.url+path, bytes.NewReader(body))
	if sign != nil {
		req.Header.Set(proto.SignatureHeader, base64.StdEncoding.EncodeToString(sign(body)))
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var p proto.Problem
		_ = json.NewDecoder(resp.Body).Decode(&p)
		return resp.StatusCode, p.Code
	}
	if out != nil {
		_ = json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode, ""
}

func (c *rawClient) sign(body []byte) []byte {
	sig, err := c.id.Sign(body)
	if err != nil {
		c.t.Fatal(err)
	}
	return sig
}

func TestServerRefusesWhatTheProtocolForbids(t *testing.T) {
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	fs := fakeserver.New(fakeserver.Options{EnrollmentToken: "tok", Clock: func() time.Time { return now }, TokenTTL: time.Minute})
	srv := httptest.NewServer(fs)
	defer srv.Close()
	id, _ := identity.Generate(identity.Ed25519)
	other, _ := identity.Generate(identity.Ed25519)
	c := &rawClient{t, srv.URL, id}
	enroll := proto.EnrollRequest{
		ProtocolVersion: agent.ProtocolVersion, HardwareID: "gw", Serial: "s", Algorithm: "ed25519",
		PublicKeyPEM: string(id.PublicKeyPEM()), EnrollmentToken: "tok", Timestamp: now,
	}
	otherSign := func(b []byte) []byte { sig, _ := other.Sign(b); return sig }

	check := func(what string, status int, code string, wantStatus int, wantCode string) {
		t.Helper()
		if status != wantStatus || code != wantCode {
			t.Errorf("%s: %d %q, want %d %q", what, status, code, wantStatus, wantCode)
		}
	}
	st, code := c.post("/device/v1/enroll", enroll, nil, "", nil)
	check("unsigned enroll", st, code, 401, proto.CodeBadSignature)
	st, code = c.post("/device/v1/enroll", enroll, otherSign, "", nil)
	check("enroll signed by another key", st, code, 401, proto.CodeBadSignature)
	skewed := enroll
	skewed.Timestamp = now.Add(-proto.MaxClockSkew - time.Second)
	st, code = c.post("/device/v1/enroll", skewed, c.sign, "", nil)
	check("skewed enroll", st, code, 401, proto.CodeClockSkew)
	badToken := enroll
	badToken.EnrollmentToken = "guess"
	st, code = c.post("/device/v1/enroll", badToken, c.sign, "", nil)
	check("wrong enrollment token", st, code, 403, "")
	var er proto.EnrollResponse
	st, code = c.post("/device/v1/enroll", enroll, c.sign, "", &er)
	check("enroll", st, code, 200, "")
	if er.Status != proto.StatusActive {
		t.Fatalf("enrolled %+v", er)
	}

	auth := proto.AuthRequest{KeyID: id.KeyID(), Timestamp: now}
	st, code = c.post("/device/v1/auth", proto.AuthRequest{KeyID: other.KeyID(), Timestamp: now}, otherSign, "", nil)
	check("auth of an unknown key", st, code, 401, proto.CodeUnknownDevice)
	st, code = c.post("/device/v1/auth", auth, otherSign, "", nil)
	check("auth signed by another key", st, code, 401, proto.CodeBadSignature)
	var ar proto.AuthResponse
	st, code = c.post("/device/v1/auth", auth, c.sign, "", &ar)
	check("auth", st, code, 200, "")
	st, code = c.post("/device/v1/auth", auth, c.sign, "", nil)
	check("replayed auth", st, code, 401, proto.CodeReplay)
	earlier := auth
	earlier.Timestamp = now.Add(-time.Second)
	st, code = c.post("/device/v1/auth", earlier, c.sign, "", nil)
	check("older auth", st, code, 401, proto.CodeReplay)

	st, code = c.post("/device/v1/checkin", proto.CheckinRequest{}, nil, ar.Token, nil)
	check("check-in", st, code, 200, "")
	st, code = c.post("/device/v1/checkin", proto.CheckinRequest{}, nil, "forged", nil)
	check("check-in with a forged token", st, code, 401, proto.CodeTokenInvalid)
	now = now.Add(time.Minute)
	st, code = c.post("/device/v1/checkin", proto.CheckinRequest{}, nil, ar.Token, nil)
	check("check-in with an expired token", st, code, 401, proto.CodeTokenInvalid)

	if n := fs.Counts(); n != (fakeserver.Counts{Enrolls: 1, Auths: 1, Checkins: 1}) {
		t.Errorf("counts %+v", n)
	}
}
