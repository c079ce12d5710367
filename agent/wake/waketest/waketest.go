// Package waketest helps test MQTT wake-ups against a real broker: it
// finds the broker, gives each test its own topic prefix so parallel runs
// never see each other's messages, and offers a TCP proxy (plain or TLS)
// that a test can stop and start again to cut the connection to the
// broker.
package waketest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// AddrEnv overrides the broker address tests use.
const AddrEnv = "STEWARD_TEST_MQTT_ADDR"

// DefaultAddr is the broker the development machines and CI run.
const DefaultAddr = "127.0.0.1:1883"

// BrokerAddr returns the broker's host:port and fails the test (it does
// not skip it) when nothing answers there: wake-ups untested against a
// real broker are untested.
func BrokerAddr(t testing.TB) string {
	t.Helper()
	addr := os.Getenv(AddrEnv)
	if addr == "" {
		addr = DefaultAddr
	}
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatalf("the MQTT broker at %s is unreachable (%v); start it, e.g. `mosquitto -d -c /etc/mosquitto/mosquitto.conf`, or point %s at one", addr, err, AddrEnv)
	}
	c.Close()
	return addr
}

// Prefix returns a fresh random topic prefix, e.g. "t-3f9a0c…".
func Prefix(t testing.TB) string {
	return "t-" + Hex(t, 8)
}

// Hex returns n random bytes in hex, for unique ids.
func Hex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// Proxy forwards TCP connections from its own address to a target.
// Stop closes the listener and every connection, as a broker crash
// would; Start listens again on the same address.
type Proxy struct {
	target string
	tls    *tls.Config // non-nil: terminate TLS before forwarding

	mu    sync.Mutex
	addr  string
	ln    net.Listener
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

// NewProxy starts a proxy on a free loopback port to target. With a
// non-nil tlsConf the proxy speaks TLS to its clients and plain TCP to
// the target. The proxy stops when the test ends.
func NewProxy(t testing.TB, target string, tlsConf *tls.Config) *Proxy {
	t.Helper()
	p := &Proxy{target: target, tls: tlsConf, addr: "127.0.0.1:0", conns: map[net.Conn]bool{}}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p
}

// Addr is the proxy's host:port, the same across Stop and Start.
func (p *Proxy) Addr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr
}

// Start listens again after Stop.
func (p *Proxy) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		return errors.New("waketest: proxy already running")
	}
	var ln net.Listener
	var err error
	for range 50 { // the old port can linger briefly after Stop
		ln, err = net.Listen("tcp", p.addr)
		if err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	if p.tls != nil {
		ln = tls.NewListener(ln, p.tls)
	}
	p.ln, p.addr = ln, ln.Addr().String()
	p.wg.Add(1)
	go p.accept(ln)
	return nil
}

// Stop closes the listener and cuts every connection.
func (p *Proxy) Stop() {
	p.mu.Lock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *Proxy) accept(ln net.Listener) {
	defer p.wg.Done()
	for {
		in, err := ln.Accept()
		if err != nil {
			return
		}
		out, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		if p.ln != ln { // stopped meanwhile
			p.mu.Unlock()
			in.Close()
			out.Close()
			return
		}
		p.conns[in], p.conns[out] = true, true
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(in, out)
		go p.pipe(out, in)
	}
}

func (p *Proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	io.Copy(dst, src)
	// Closing both ends makes the other direction end too.
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// Connect returns a raw MQTT client with a random client id, connected to
// addr; it disconnects when the test ends.
func Connect(t testing.TB, addr string) mqtt.Client {
	t.Helper()
	opts := mqtt.NewClientOptions().AddBroker("tcp://" + addr).
		SetClientID("waketest-" + Hex(t, 8)).
		SetCleanSession(true).
		SetConnectTimeout(5 * time.Second).
		SetAutoReconnect(false)
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connecting to the MQTT broker at %s: %v", addr, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// Publish sends payload with QoS 1 and waits for the broker's
// acknowledgement.
func Publish(t testing.TB, c mqtt.Client, topic string, payload []byte, retained bool) {
	t.Helper()
	tok := c.Publish(topic, 1, retained, payload)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publishing to %s: %v", topic, tok.Error())
	}
}

// Message is one message a Recorder received.
type Message struct {
	Topic    string
	Payload  []byte
	Retained bool
	QoS      byte
}

// Recorder keeps every message its subscriptions receive.
type Recorder struct {
	mu   sync.Mutex
	msgs []Message
}

// Subscribe connects a raw client to addr and records what it receives on
// filters (QoS 1). The subscription is in place when it returns.
func Subscribe(t testing.TB, addr string, filters ...string) *Recorder {
	t.Helper()
	r := &Recorder{}
	c := Connect(t, addr)
	f := map[string]byte{}
	for _, s := range filters {
		f[s] = 1
	}
	tok := c.SubscribeMultiple(f, func(_ mqtt.Client, m mqtt.Message) {
		r.mu.Lock()
		r.msgs = append(r.msgs, Message{Topic: m.Topic(), Payload: m.Payload(), Retained: m.Retained(), QoS: m.Qos()})
		r.mu.Unlock()
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribing to %v: %v", filters, tok.Error())
	}
	return r
}

// Messages returns what was received so far.
func (r *Recorder) Messages() []Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Message(nil), r.msgs...)
}

// WaitFor waits until at least n messages arrived and returns them all;
// it fails the test after 20 seconds.
func (r *Recorder) WaitFor(t testing.TB, n int) []Message {
	t.Helper()
	Eventually(t, func() bool { return len(r.Messages()) >= n }, "%d messages to arrive", n)
	return r.Messages()
}

// Eventually polls cond until it holds, failing the test after 20 seconds
// (a bound for hangs, not a performance claim).
func Eventually(t testing.TB, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for "+format, args...)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// PKI is a throwaway certificate authority with a server certificate for
// 127.0.0.1 and a client certificate, written as PEM files.
type PKI struct {
	CAFile, ClientCertFile, ClientKeyFile string
	// Server presents the server certificate and requires a client
	// certificate from the CA.
	Server *tls.Config
}

// NewPKI creates the files in a temporary directory of t.
func NewPKI(t testing.TB) PKI {
	t.Helper()
	dir := t.TempDir()
	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "waketest CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, cn string, usage x509.ExtKeyUsage, ips []net.IP) (*ecdsa.PrivateKey, []byte) {
		k := newKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			IPAddresses:  ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, k.Public(), caKey)
		if err != nil {
			t.Fatal(err)
		}
		return k, der
	}
	srvKey, srvDER := issue(2, "127.0.0.1", x509.ExtKeyUsageServerAuth, []net.IP{net.IPv4(127, 0, 0, 1)})
	cliKey, cliDER := issue(3, "waketest client", x509.ExtKeyUsageClientAuth, nil)
	p := PKI{
		CAFile:         filepath.Join(dir, "ca.pem"),
		ClientCertFile: filepath.Join(dir, "client.pem"),
		ClientKeyFile:  filepath.Join(dir, "client.key"),
	}
	writePEM(t, p.CAFile, "CERTIFICATE", caDER)
	writePEM(t, p.ClientCertFile, "CERTIFICATE", cliDER)
	cliKeyDER, err := x509.MarshalPKCS8PrivateKey(cliKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, p.ClientKeyFile, "PRIVATE KEY", cliKeyDER)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	p.Server = &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}
	return p
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
