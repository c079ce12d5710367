package wake

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	agentwake "github.com/steward-iot/steward/agent/wake"
	"github.com/steward-iot/steward/agent/wake/waketest"
)

// docBlock returns the tab-indented block that follows the line starting
// with heading in agent/wake's package documentation, without the "//\t".
func docBlock(t *testing.T, heading string) string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "agent", "wake", "doc.go"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b strings.Builder
	state := 0 // 0 before the heading, 1 before the block, 2 in it
	for sc := bufio.NewScanner(f); sc.Scan(); {
		line := sc.Text()
		switch {
		case state == 0 && strings.HasPrefix(line, "// "+heading):
			state = 1
		case state > 0 && strings.HasPrefix(line, "//\t"):
			state = 2
			b.WriteString(strings.TrimPrefix(line, "//\t") + "\n")
		case state == 2 && line == "//":
			b.WriteString("\n")
		case state == 2:
			return b.String()
		}
	}
	t.Fatalf("no block after %q in agent/wake/doc.go", heading)
	return ""
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// lockedBuffer collects the broker's log for failure messages.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestDocumentedBrokerACL runs a private Mosquitto with the configuration
// and ACL from agent/wake's documentation (TLS lines left out) and checks
// that the server can wake devices while a device reads only its own
// topic and its organization's broadcast, publishes nothing, and cannot
// evict another device by claiming its client id.
func TestDocumentedBrokerACL(t *testing.T) {
	t.Parallel()
	for _, bin := range []string{"mosquitto", "mosquitto_passwd"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is not installed (apt-get install mosquitto mosquitto-clients): %v", bin, err)
		}
	}
	dir := t.TempDir()
	devAddr, srvAddr := freePort(t), freePort(t)
	const exampleID = "0190a3b4-7c2e-7f00-8000-000000000001"
	// d is a compromised acme device, played by a raw client.
	idA, idB, idC, idD := exampleID, "dev-b-"+waketest.Hex(t, 4), "dev-c-"+waketest.Hex(t, 4), "dev-d-"+waketest.Hex(t, 4)

	acl := docBlock(t, "steward.acl")
	if !strings.Contains(acl, "user "+exampleID) {
		t.Fatalf("the documented ACL no longer names the example device:\n%s", acl)
	}
	acl += fmt.Sprintf("\nuser %s\ntopic read steward/acme/wake\n\nuser %s\ntopic read steward/globex/wake\n\nuser %s\ntopic read steward/acme/wake\n", idB, idC, idD)

	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	var conf strings.Builder
	for line := range strings.Lines(docBlock(t, "mosquitto.conf")) {
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
			conf.WriteString("\n")
		case f[0] == "certfile" || f[0] == "keyfile":
		case f[0] == "password_file":
			conf.WriteString("password_file " + filepath.Join(dir, "passwd") + "\n")
		case f[0] == "acl_file":
			conf.WriteString("acl_file " + filepath.Join(dir, "steward.acl") + "\n")
		case line == "listener 8883\n":
			conf.WriteString("listener " + port(devAddr) + " 127.0.0.1\n")
		case strings.HasPrefix(line, "listener 8884 "):
			conf.WriteString("listener " + port(srvAddr) + " 127.0.0.1\n")
		default:
			conf.WriteString(line)
		}
	}
	conf.WriteString("user " + u.Username + "\npersistence false\nlog_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n")
	if !strings.Contains(conf.String(), "use_username_as_clientid true") || !strings.Contains(conf.String(), "retain_available false") {
		t.Fatalf("the documented configuration lost a setting this test relies on:\n%s", conf.String())
	}
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("mosquitto.conf", conf.String())
	write("steward.acl", acl)
	write("passwd", "")
	pass := map[string]string{"steward-server": "srv-" + waketest.Hex(t, 8)}
	for _, id := range []string{idA, idB, idC, idD} {
		pass[id] = "dev-" + waketest.Hex(t, 8)
	}
	for name, pw := range pass {
		if out, err := exec.Command("mosquitto_passwd", "-b", filepath.Join(dir, "passwd"), name, pw).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd: %v: %s", err, out)
		}
	}

	var brokerLog lockedBuffer
	cmd := exec.Command("mosquitto", "-c", filepath.Join(dir, "mosquitto.conf"))
	cmd.Stdout, cmd.Stderr = &brokerLog, &brokerLog
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("configuration:\n%s\nACL:\n%s\nbroker log:\n%s", conf.String(), acl, brokerLog.String())
		}
	})
	waketest.Eventually(t, func() bool {
		for _, a := range []string{devAddr, srvAddr} {
			c, err := net.Dial("tcp", a)
			if err != nil {
				return false
			}
			c.Close()
		}
		return true
	}, "the private broker to listen")

	// The server logs in with its password from a file.
	pwFile := filepath.Join(dir, "server.pw")
	write("server.pw", pass["steward-server"]+"\n")
	pcfg := Config{
		Broker: agentwake.Broker{URL: "tcp://" + srvAddr, Username: "steward-server", PasswordFile: pwFile},
		// The documented ACL is written for the default prefix.
		MaxReconnectInterval: 200 * time.Millisecond,
	}
	if err := pcfg.LoadPassword(PasswordEnv, func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	pub := env{}.open(t, pcfg)

	subscribe := func(org, id string) *agentwake.MQTTSubscriber {
		cfg := agentwake.Config{Broker: agentwake.Broker{URL: "tcp://" + devAddr, Username: id, Password: pass[id]}, MaxReconnectInterval: time.Second}
		s, err := agentwake.NewMQTT(context.Background(), cfg, agentwake.Device{Org: org, ID: id}, func(time.Duration) {}, agentwake.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		waketest.Eventually(t, s.Connected, "device %s to subscribe", id)
		return s
	}
	a, b, c := subscribe("acme", idA), subscribe("acme", idB), subscribe("globex", idC)
	ctx := context.Background()
	received := func(s *agentwake.MQTTSubscriber, n uint64, what string) {
		t.Helper()
		waketest.Eventually(t, func() bool { return s.Stats().Received >= n }, what)
		if got := s.Stats().Received; got != n {
			t.Fatalf("%s: received %d messages, want %d", what, got, n)
		}
	}

	// Per-device and broadcast wake-ups reach exactly their devices. Each
	// device's last expected message comes after any it must not get, so
	// counting it settles the question.
	if err := pub.WakeDevices(ctx, "acme", []string{idA}, ReasonRollout, "r1"); err != nil {
		t.Fatal(err)
	}
	if err := pub.WakeOrg(ctx, "acme", 0, ReasonRollout, "r1"); err != nil {
		t.Fatal(err)
	}
	if err := pub.WakeOrg(ctx, "globex", 0, ReasonRollout, "r2"); err != nil {
		t.Fatal(err)
	}
	received(a, 2, "device a: its own wake-up and acme's broadcast")
	received(b, 1, "device b: acme's broadcast only")
	received(c, 1, "device c: globex's broadcast only")

	// Anonymous clients are refused.
	anon := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + devAddr).SetClientID("anon").SetConnectTimeout(5 * time.Second))
	if tok := anon.Connect(); tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
		anon.Disconnect(0)
		t.Fatal("an anonymous client connected")
	}

	// Device d, compromised, claims device b's client id: the broker
	// makes it d instead, so b keeps its connection. It then tries to
	// forge wake-ups for b and acme, and to read b's and globex's.
	var mu sync.Mutex
	var intruderGot []string
	intruder := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + devAddr).
		SetClientID(idB).SetUsername(idD).SetPassword(pass[idD]).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second))
	if tok := intruder.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("device d's credentials: %v", tok.Error())
	}
	defer intruder.Disconnect(0)
	ownTopic, _ := agentwake.DeviceTopic("steward", "acme", idD)
	bTopic, _ := agentwake.DeviceTopic("steward", "acme", idB)
	tok := intruder.SubscribeMultiple(map[string]byte{bTopic: 1, "steward/globex/wake": 1, "steward/#": 1, ownTopic: 1}, func(_ mqtt.Client, m mqtt.Message) {
		mu.Lock()
		intruderGot = append(intruderGot, m.Topic())
		mu.Unlock()
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribing: %v", tok.Error())
	}
	for _, topic := range []string{bTopic, "steward/acme/wake"} {
		// Mosquitto drops a denied publish silently (and still acks it).
		intruder.Publish(topic, 1, false, `{"v":1}`).WaitTimeout(5 * time.Second)
	}
	if err := pub.WakeDevices(ctx, "acme", []string{idB}, ReasonRollout, "r3"); err != nil {
		t.Fatal(err)
	}
	if err := pub.WakeOrg(ctx, "globex", 0, ReasonRollout, "r4"); err != nil {
		t.Fatal(err)
	}
	if err := pub.WakeDevices(ctx, "acme", []string{idD, idA}, ReasonRollout, "r5"); err != nil {
		t.Fatal(err)
	}
	received(a, 3, "device a: one more wake-up from the server, none forged")
	received(b, 2, "device b: one more wake-up from the server, none forged")
	received(c, 2, "device c: globex's second broadcast")
	waketest.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(intruderGot) > 0
	}, "device d to get its own wake-up")
	mu.Lock()
	for _, topic := range intruderGot {
		if topic != ownTopic {
			t.Errorf("device d read %s; it may read only %s and acme's broadcast", topic, ownTopic)
		}
	}
	mu.Unlock()
	if s := b.Stats(); s.Connects != 1 || !b.Connected() {
		t.Errorf("device b lost its connection to a client claiming its id: %+v", s)
	}
}
