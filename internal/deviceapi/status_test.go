package deviceapi_test

import (
	"encoding/json"
	"testing"

	"github.com/steward-iot/steward/agent/proto"
	"github.com/steward-iot/steward/internal/identity"
	"github.com/steward-iot/steward/internal/store"
)

// TestUpdateStatusNotConfigured: without a status recorder the endpoint is
// a 404 for an authenticated device, and a 401 without a token either way.
func TestUpdateStatusNotConfigured(t *testing.T) {
	f := newFleet(t, store.SQLite)
	dev := f.newDevice("SN-S")
	b, _ := json.Marshal(proto.UpdateStatus{ReportID: "r1", ReleaseID: "x", Step: proto.StepDownloading})
	want(t, dev.post("/device/v1/updates/status", b, nil, ""), 401, proto.CodeTokenInvalid)
	f.adminDo("POST", "/api/v1/orgs/acme/preauthorizations", f.admin, identity.PreauthorizeRequest{Serials: []string{"SN-S"}}, 201)
	want(t, dev.enroll("acme", ""), 200, "")
	want(t, dev.auth(), 200, "")
	want(t, dev.post("/device/v1/updates/status", b, nil, dev.token), 404, "")
}
