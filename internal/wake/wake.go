// Package wake is the server side of MQTT wake-ups: when a rollout is
// urgent, the server publishes a wake-up so that devices check in at once
// instead of at their next poll. The wire format, topics, threat model and
// the broker ACL a deployment should use are specified in package
// github.com/steward-iot/steward/agent/wake, which both sides share.
//
// A wake-up is only a nudge, sent best effort: it carries no authority,
// and a device that misses one (MQTT off, broker down, device offline)
// still learns of the rollout at its next poll. Callers therefore log a
// failed wake-up and carry on; they never retry it in a loop or fail the
// rollout because of it.
//
// Open returns the MQTT publisher when a broker URL is configured and Nop
// otherwise. The publisher publishes with QoS 1 (the broker acknowledges
// each message, so failures are counted truthfully) and never retained (a
// retained wake-up would wake every device of the topic on every
// reconnection, forever). Large per-device batches are paced by a token
// bucket (Config.MaxRate), because every wake-up becomes a check-in:
// publishing faster than the server takes check-ins only moves the queue
// from the broker to the server.
package wake

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	agentwake "github.com/steward-iot/steward/agent/wake"
)

// Publisher sends wake-ups. org is the organization's slug, the name
// devices enroll with and subscribe under.
type Publisher interface {
	// WakeDevices asks each device to check in now (spread 0). All ids are
	// validated before anything is sent. An error says how many wake-ups
	// were not confirmed by the broker and why; the others were sent.
	WakeDevices(ctx context.Context, org string, deviceIDs []string, reason, rolloutID string) error
	// WakeOrg asks every device of org to check in within spread, each at
	// a uniformly random moment (see SpreadFor). spread is rounded up to
	// whole seconds and must be between 0 and agent/wake.MaxSpread.
	WakeOrg(ctx context.Context, org string, spread time.Duration, reason, rolloutID string) error
	// Close disconnects; later calls fail.
	Close() error
}

// Reasons a wake-up gives (for the devices' logs).
const (
	ReasonRollout = agentwake.ReasonRollout // a rollout now targets the device
	ReasonUrgent  = agentwake.ReasonUrgent  // an immediate rollout: windows ignored
)

// Stats counts wake-ups; each field only grows. The MQTT publisher and
// Nop both report them, for metrics.
type Stats struct {
	Published uint64 // acknowledged by the broker
	Failed    uint64 // not sent, or not acknowledged in time
}

// Errors the publisher wraps.
var (
	ErrNotConnected = errors.New("wake: not connected to the MQTT broker")
	ErrClosed       = errors.New("wake: publisher closed")
)

// SpreadFor is the broadcast spread that keeps devices check-ins of a
// whole organization under rate per second, rounded up to a second and
// capped at agent/wake.MaxSpread.
func SpreadFor(devices int, rate float64) time.Duration {
	if devices <= 0 || rate <= 0 || math.IsNaN(rate) {
		return 0
	}
	secs := math.Ceil(float64(devices) / rate)
	if secs >= agentwake.MaxSpread.Seconds() {
		return agentwake.MaxSpread
	}
	return time.Duration(secs) * time.Second
}

// Nop is the publisher when MQTT is off: it checks its arguments like the
// MQTT publisher, so a caller's bug shows with either, and sends nothing.
// Devices then learn of rollouts at their next poll.
type Nop struct{}

func (Nop) WakeDevices(_ context.Context, org string, deviceIDs []string, reason, rolloutID string) error {
	_, _, err := devicePlan(agentwake.DefaultTopicPrefix, org, deviceIDs, reason, rolloutID, time.Time{})
	return err
}

func (Nop) WakeOrg(_ context.Context, org string, spread time.Duration, reason, rolloutID string) error {
	_, _, err := orgPlan(agentwake.DefaultTopicPrefix, org, spread, reason, rolloutID, time.Time{})
	return err
}

func (Nop) Close() error { return nil }

// Stats is always zero.
func (Nop) Stats() Stats { return Stats{} }

// devicePlan validates a per-device batch and returns its topics
// (duplicates removed) and the one payload they all carry.
func devicePlan(prefix, org string, deviceIDs []string, reason, rolloutID string, at time.Time) ([]string, []byte, error) {
	payload, err := agentwake.Payload{V: agentwake.Version, Reason: reason, RolloutID: rolloutID, At: at}.Encode()
	if err != nil {
		return nil, nil, err
	}
	if err := agentwake.CheckID("organization", org); err != nil {
		return nil, nil, err
	}
	topics := make([]string, 0, len(deviceIDs))
	seen := make(map[string]bool, len(deviceIDs))
	var errs []error
	for _, id := range deviceIDs {
		if seen[id] {
			continue
		}
		seen[id] = true
		t, err := agentwake.DeviceTopic(prefix, org, id)
		if err != nil {
			errs = append(errs, err)
			if len(errs) == 5 {
				errs = append(errs, errors.New("wake: further invalid ids not listed"))
				break
			}
			continue
		}
		topics = append(topics, t)
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	return topics, payload, nil
}

// orgPlan validates a broadcast and returns its topic and payload.
func orgPlan(prefix, org string, spread time.Duration, reason, rolloutID string, at time.Time) (string, []byte, error) {
	if spread < 0 || spread > agentwake.MaxSpread {
		return "", nil, fmt.Errorf("wake: spread %s must be between 0 and %s", spread, agentwake.MaxSpread)
	}
	secs := int((spread + time.Second - 1) / time.Second)
	payload, err := agentwake.Payload{V: agentwake.Version, Reason: reason, RolloutID: rolloutID, SpreadSeconds: secs, At: at}.Encode()
	if err != nil {
		return "", nil, err
	}
	topic, err := agentwake.OrgTopic(prefix, org)
	if err != nil {
		return "", nil, err
	}
	return topic, payload, nil
}
