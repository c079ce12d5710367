package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/steward-iot/steward/agent/identity"
)

// run executes a fresh root command as the binary would with args.
func run(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errOut)
	err = root.Execute()
	return out.String(), errOut.String(), err
}

func TestVersion(t *testing.T) {
	old := version
	version = "1.2.3" // as if set by -ldflags
	t.Cleanup(func() { version = old })
	out, _, err := run(t, "version")
	if err != nil {
		t.Fatal(err)
	}
	if out != "steward-agent 1.2.3 (protocol 1)\n" {
		t.Errorf("version printed %q", out)
	}
}

var textOutput = regexp.MustCompile(`\Akey id:    ([0-9a-f]{64})\nalgorithm: (\S+)\n(-----BEGIN PUBLIC KEY-----\n(?s:.*)-----END PUBLIC KEY-----\n)\z`)

func TestIdentityText(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	out, errOut, err := run(t, "identity", "--state", state)
	if err != nil {
		t.Fatal(err)
	}
	m := textOutput.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("unexpected output:\n%s", out)
	}
	if m[2] != string(identity.Ed25519) {
		t.Errorf("default algorithm = %s, want ed25519", m[2])
	}
	pub, _, err := identity.ParsePublicKeyPEM([]byte(m[3]))
	if err != nil {
		t.Fatalf("printed public key: %v", err)
	}
	if keyID, _ := identity.PublicKeyID(pub); keyID != m[1] {
		t.Errorf("printed key id %s does not match the printed public key (%s)", m[1], keyID)
	}
	if !strings.Contains(errOut, "generated a new device key") {
		t.Errorf("stderr %q does not report the new key", errOut)
	}

	again, errOut, err := run(t, "identity", "--state", state)
	if err != nil {
		t.Fatal(err)
	}
	if again != out {
		t.Errorf("second run printed a different identity:\n%s\nwant:\n%s", again, out)
	}
	if errOut != "" {
		t.Errorf("second run wrote to stderr: %q", errOut)
	}
}

func TestIdentityJSON(t *testing.T) {
	state := t.TempDir()
	var first map[string]any
	for i, wantCreated := range []bool{true, false} {
		out, _, err := run(t, "identity", "--state", state, "--algorithm", "ecdsa-p256", "--json")
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("output is not JSON: %v\n%s", err, out)
		}
		if len(got) != 4 {
			t.Errorf("JSON has keys %v, want key_id, algorithm, public_key_pem, created", got)
		}
		if got["algorithm"] != "ecdsa-p256" || got["created"] != wantCreated {
			t.Errorf("run %d: algorithm=%v created=%v", i, got["algorithm"], got["created"])
		}
		pemText, _ := got["public_key_pem"].(string)
		pub, alg, err := identity.ParsePublicKeyPEM([]byte(pemText))
		if err != nil || alg != identity.ECDSAP256 {
			t.Fatalf("public_key_pem: %v, %v", alg, err)
		}
		if keyID, _ := identity.PublicKeyID(pub); got["key_id"] != keyID {
			t.Errorf("key_id %v does not match public_key_pem (%s)", got["key_id"], keyID)
		}
		if i == 0 {
			first = got
		} else if got["key_id"] != first["key_id"] {
			t.Errorf("key_id changed between runs: %v, %v", first["key_id"], got["key_id"])
		}
	}
}

func TestIdentityStateFromEnv(t *testing.T) {
	envDir, flagDir := t.TempDir(), t.TempDir()
	t.Setenv(stateEnv, envDir)
	if _, _, err := run(t, "identity"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(envDir, identity.KeyFile)); err != nil {
		t.Errorf("key not created in $%s: %v", stateEnv, err)
	}

	// The flag wins over the environment.
	if _, _, err := run(t, "identity", "--state", flagDir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(flagDir, identity.KeyFile)); err != nil {
		t.Errorf("key not created in --state dir: %v", err)
	}
}

func TestIdentityErrors(t *testing.T) {
	t.Setenv(stateEnv, "")
	state := t.TempDir()
	if _, _, err := run(t, "identity", "--state", state); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"no state", []string{"identity"}, stateEnv},
		{"bad algorithm", []string{"identity", "--state", t.TempDir(), "--algorithm", "rsa"}, "unsupported algorithm"},
		{"algorithm mismatch", []string{"identity", "--state", state, "--algorithm", "ecdsa-p256"}, "never replaced"},
		{"extra argument", []string{"identity", "--state", state, "extra"}, "unknown command"},
	} {
		_, errOut, err := run(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.wantErr) {
			t.Errorf("%s: error %v, want one mentioning %q", c.name, err, c.wantErr)
		}
		if strings.Contains(errOut, "Usage:") {
			t.Errorf("%s: usage printed for a runtime error:\n%s", c.name, errOut)
		}
	}
}
