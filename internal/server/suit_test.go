package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"

	"github.com/veraison/go-cose"

	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/release"
	"github.com/steward-iot/steward/internal/rollout"
	"github.com/steward-iot/steward/internal/store"
	"github.com/steward-iot/steward/internal/suit"
)

// TestSUITEnvelopesForMicrocontrollers creates releases of an mcu-suit
// product and checks the envelope a device would get: signed by the key
// served for provisioning, naming vendor, class, digest, size, sequence
// number and a URI that serves exactly the image.
func TestSUITEnvelopesForMicrocontrollers(t *testing.T) {
	l := start(t, store.SQLite)
	l.admin("POST", "/api/v1/orgs/acme/products", inventory.CreateProductRequest{Slug: "sensor", Name: "Sensor", HardwareID: "sensor-hw",
		Capability: inventory.CapabilityMCUSUIT, LinkClass: "lora", BatteryPowered: true}, nil)
	l.admin("POST", "/api/v1/orgs/acme/products", inventory.CreateProductRequest{Slug: "gw", Name: "GW", HardwareID: "gw-hw",
		Capability: inventory.CapabilityAB, LinkClass: "wifi"}, nil)

	code, keyPEM := fetchAuth(t, l.url+"/api/v1/orgs/acme/suit/key", l.token)
	block, _ := pem.Decode(keyPEM)
	if code != 200 || block == nil {
		t.Fatalf("suit key: %d %s", code, keyPEM)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := cose.NewVerifier(cose.AlgorithmES256, pub.(*ecdsa.PublicKey))
	if err != nil {
		t.Fatal(err)
	}

	var last uint64
	for i, version := range []string{"1.0.0", "1.0.1"} {
		img := []byte(strings.Repeat("firmware "+version+" ", 500))
		a := l.upload("fw-"+version+".bin", img)
		var r release.Release
		l.admin("POST", "/api/v1/orgs/acme/releases", release.CreateReleaseRequest{Product: "sensor", Version: version,
			Artifacts: []release.ArtifactRef{{ID: a.ID}}}, &r)
		var envs []suit.Envelope
		l.admin("GET", "/api/v1/orgs/acme/releases/"+r.ID+"/suit", nil, &envs)
		if len(envs) != 1 || envs[0].ArtifactID != a.ID {
			t.Fatalf("envelopes of %s: %+v", version, envs)
		}
		m, err := suit.Decode(envs[0].Envelope, verifier)
		if err != nil {
			t.Fatal(err)
		}
		vendor := suit.VendorID("acme.127.0.0.1")
		if m.VendorID != vendor || m.ClassID != suit.ClassID(vendor, "sensor-hw") || m.ImageDigest != sha256.Sum256(img) ||
			m.ImageSize != uint64(len(img)) || m.SequenceNumber != uint64(r.Counter) {
			t.Fatalf("manifest of %s: %+v", version, m)
		}
		if err := suit.CheckSequence(m, last); i > 0 && err != nil {
			t.Fatalf("sequence %d after %d: %v", m.SequenceNumber, last, err)
		}
		last = m.SequenceNumber
		// The URI serves the image itself.
		if code, got := fetch(t, m.URI); code != 200 || string(got) != string(img) {
			t.Fatalf("GET %s: %d, %d bytes", m.URI, code, len(got))
		}
		// A tampered envelope does not verify.
		bad := append([]byte(nil), envs[0].Envelope...)
		bad[len(bad)-5] ^= 1
		if _, err := suit.Decode(bad, verifier); err == nil {
			t.Fatal("a tampered envelope verified")
		}
		t.Logf("SUIT envelope for %s: %d bytes", version, len(envs[0].Envelope))
	}
	// An older sequence number is refused by the device.
	var first release.Release
	var page struct{ Items []release.Release }
	l.admin("GET", "/api/v1/orgs/acme/releases?product=sensor", nil, &page)
	first = page.Items[0]
	var envs []suit.Envelope
	l.admin("GET", "/api/v1/orgs/acme/releases/"+first.ID+"/suit", nil, &envs)
	m, err := suit.Decode(envs[0].Envelope, verifier)
	if err != nil {
		t.Fatal(err)
	}
	if err := suit.CheckSequence(m, last); !errors.Is(err, suit.ErrRollback) {
		t.Fatalf("rollback to sequence %d after %d: %v", m.SequenceNumber, last, err)
	}

	// A device fetches the envelope of what it is assigned over the device API.
	dev := l.deviceOf(t, "MCU-1", "sensor-hw")
	tok, err := dev.c.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := fetchAuth(t, l.url+"/device/v1/suit", tok); code != 404 {
		t.Fatalf("unassigned device's envelope: %d, want 404", code)
	}
	l.admin("PUT", "/api/v1/orgs/acme/devices/"+dev.id+"/assignment", rollout.AssignRequest{ReleaseID: page.Items[1].ID}, nil)
	code, env := fetchAuth(t, l.url+"/device/v1/suit", tok)
	if code != 200 {
		t.Fatalf("device's envelope: %d %s", code, env)
	}
	if m, err := suit.Decode(env, verifier); err != nil || m.SequenceNumber != last {
		t.Fatalf("device's envelope: %+v %v", m, err)
	}

	// Releases of other products get none.
	a := l.upload("gw.img", []byte("gateway image"))
	var gw release.Release
	l.admin("POST", "/api/v1/orgs/acme/releases", release.CreateReleaseRequest{Product: "gw", Version: "1.0.0",
		Artifacts: []release.ArtifactRef{{ID: a.ID}}}, &gw)
	var none json.RawMessage
	l.admin("GET", "/api/v1/orgs/acme/releases/"+gw.ID+"/suit", nil, &none)
	if string(none) != "[]" {
		t.Fatalf("A/B product's release has envelopes: %s", none)
	}
}
