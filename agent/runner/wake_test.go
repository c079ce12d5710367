package runner

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/steward-iot/steward/agent/client"
	"github.com/steward-iot/steward/agent/fakeserver"
	"github.com/steward-iot/steward/agent/proto"
	"github.com/steward-iot/steward/agent/wake"
	"github.com/steward-iot/steward/agent/wake/waketest"
)

// TestWakeUpCutsTheWaitShort has the server ask for an hour between
// check-ins and a wake-up arrive over the real MQTT broker: the agent checks
// in at once instead of an hour later.
func TestWakeUpCutsTheWaitShort(t *testing.T) {
	broker := waketest.BrokerAddr(t)
	prefix := waketest.Prefix(t)
	fs := fakeserver.New(fakeserver.Options{EnrollmentToken: enrollToken, PollIntervalSeconds: 3600})
	hs := httptest.NewServer(fs)
	t.Cleanup(hs.Close)
	cfg := Config{
		ServerURL: hs.URL,
		StateDir:  t.TempDir(),
		Enroll:    client.EnrollParams{HardwareID: "gw-100", Serial: "SN-1", EnrollmentToken: enrollToken},
		Reporter:  &FileReporter{Version: "1.2.3", Link: proto.LinkWiFi},
		Wake:      wake.Config{Broker: wake.Broker{URL: "tcp://" + broker}, TopicPrefix: prefix, MinGap: time.Second},
		WakeOrg:   "acme",
		Rand:      func() float64 { return 0.5 },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	waketest.Eventually(t, func() bool { return fs.Counts().Checkins >= 1 }, "no first check-in")
	devs := fs.Devices()
	topic, err := wake.DeviceTopic(prefix, "acme", devs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := wake.Payload{V: wake.Version, Reason: "rollout"}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	pub := waketest.Connect(t, broker)
	// The subscription may not be up yet when the first check-in is done:
	// publish until the agent reacts.
	waketest.Eventually(t, func() bool {
		waketest.Publish(t, pub, topic, payload, false)
		time.Sleep(100 * time.Millisecond)
		return fs.Counts().Checkins >= 2
	}, "the wake-up did not bring a check-in")
}
