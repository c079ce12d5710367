package wake

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/steward-iot/steward/agent/wake/waketest"
)

func TestClientOptions(t *testing.T) {
	pki := waketest.NewPKI(t)
	for _, tc := range []struct {
		url, want string
		tls       bool
	}{
		{"tcp://127.0.0.1:1883", "tcp://127.0.0.1:1883", false},
		{"mqtt://broker.example.com", "mqtt://broker.example.com:1883", false},
		{"mqtts://broker.example.com", "mqtts://broker.example.com:8883", true},
		{"ssl://[::1]:8883", "ssl://[::1]:8883", true},
	} {
		b := Broker{URL: tc.url}
		if tc.tls {
			b.CAFile, b.CertFile, b.KeyFile = pki.CAFile, pki.ClientCertFile, pki.ClientKeyFile
		}
		o, err := b.ClientOptions("c1")
		if err != nil {
			t.Errorf("%s: %v", tc.url, err)
			continue
		}
		if got := o.Servers[0].String(); got != tc.want {
			t.Errorf("%s: broker %s, want %s", tc.url, got, tc.want)
		}
		if tc.tls != (o.TLSConfig != nil && o.TLSConfig.RootCAs != nil && len(o.TLSConfig.Certificates) == 1) {
			t.Errorf("%s: TLS config %+v", tc.url, o.TLSConfig)
		}
		if o.ClientID != "c1" || o.ProtocolVersion != 4 || o.KeepAlive != 60 || o.ConnectTimeout != 10*time.Second {
			t.Errorf("%s: client id %q, protocol %d, keep-alive %d, connect timeout %s", tc.url, o.ClientID, o.ProtocolVersion, o.KeepAlive, o.ConnectTimeout)
		}
	}
}

func TestClientOptionsRefusesMisconfiguration(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	pki := waketest.NewPKI(t)
	for _, tc := range []struct {
		b    Broker
		want string
	}{
		{Broker{URL: "http://broker:80"}, "scheme"},
		{Broker{URL: "ws://broker:80"}, "scheme"},
		{Broker{URL: "tcp://:1883"}, "no host"},
		{Broker{URL: "mqtts://user:secret@broker:8883"}, "only scheme, host and port"},
		{Broker{URL: "tcp://broker:1883/topic"}, "only scheme, host and port"},
		{Broker{URL: "tcp://broker:1883", CAFile: pki.CAFile}, "use mqtts://"},
		{Broker{URL: "mqtts://broker", CAFile: filepath.Join(dir, "missing.pem")}, "reading the MQTT CA file"},
		{Broker{URL: "mqtts://broker", CAFile: notPEM}, "no PEM certificate"},
		{Broker{URL: "mqtts://broker", CertFile: pki.ClientCertFile}, "both the certificate file and the key file"},
		{Broker{URL: "mqtts://broker", CertFile: pki.ClientCertFile, KeyFile: pki.CAFile}, "client certificate"},
		{Broker{URL: "tcp://broker", Password: "p"}, "no username"},
		{Broker{URL: "tcp://broker", KeepAlive: time.Millisecond}, "keep-alive"},
	} {
		_, err := tc.b.ClientOptions("c1")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want an error containing %q", tc.b, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("the error leaks the password from the URL: %v", err)
		}
	}
}

func TestLoadPassword(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pw")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == PasswordEnv {
				return v
			}
			return ""
		}
	}
	b := Broker{PasswordFile: file}
	if err := b.LoadPassword(PasswordEnv, env("from-env")); err != nil || b.Password != "from-env" {
		t.Errorf("env should win: %q, %v", b.Password, err)
	}
	b = Broker{PasswordFile: file}
	if err := b.LoadPassword(PasswordEnv, env("")); err != nil || b.Password != "from-file" {
		t.Errorf("file with trailing newline: %q, %v", b.Password, err)
	}
	b = Broker{PasswordFile: filepath.Join(dir, "missing")}
	if err := b.LoadPassword(PasswordEnv, env("")); err == nil || !strings.Contains(err.Error(), "password file") {
		t.Errorf("missing file: %v", err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b = Broker{PasswordFile: empty}
	if err := b.LoadPassword(PasswordEnv, env("")); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("empty file: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	err := Config{TopicPrefix: "a/#", MinGap: time.Millisecond, MaxSpread: 2 * MaxSpread, MaxReconnectInterval: time.Millisecond}.Validate()
	for _, want := range []string{"topic prefix", "min gap", "max spread", "max reconnect interval"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v, want it to name %q", err, want)
		}
	}
}
