// Package wake is the device side of MQTT wake-ups, and the protocol
// both sides share (the server's publisher, internal/wake, imports it).
//
// When a rollout is urgent the server publishes a wake-up; a device that
// hears it checks in soon instead of at its next poll. With MQTT off, or
// the broker down, nothing changes but speed: devices learn of rollouts by
// polling.
//
// # Threat model
//
// A wake-up is only a nudge and carries no authority. All a device does
// on one is to check in sooner over its authenticated HTTPS channel, with
// TLS and its device key as always; what to install still comes from the
// signed metadata. A forged or replayed wake-up therefore costs at most an
// early check-in, and the subscriber bounds even that:
//
//   - At most one early check-in per Config.MinGap (default 30 s), however
//     many wake-ups arrive: a wake-up while one is pending is coalesced
//     into it, or moves it earlier but never closer than MinGap to the
//     previous one. A genuine wake-up after a forged one is served late by
//     at most MinGap, not lost.
//   - Payloads over MaxPayload (1 KiB), malformed JSON, wrong types,
//     versions other than Version, invalid tokens and retained messages
//     are ignored and counted (Stats.Invalid); warnings about them are
//     logged at most once a minute, so a flood cannot fill the flash.
//   - The spread is clamped to [0, Config.MaxSpread] (default 15 min), so
//     a forged broadcast cannot postpone an early check-in for long.
//     Unknown fields are ignored, for servers newer than the agent.
//   - The "at" time is informational only: device clocks are often wrong.
//
// # Topics
//
// With a prefix (default "steward", possibly several levels) and the
// organization's slug:
//
//	<prefix>/<org>/devices/<device-id>/wake   one device
//	<prefix>/<org>/wake                       every device of the organization
//
// Organization and device ids must be valid single topic levels: no +, #
// or /, no NUL or control characters, no leading $, at most 128 bytes
// (CheckID). Anything else is refused with an error naming the id, on both
// sides, so an id can never widen a subscription or shift a topic.
//
// # Payload
//
// JSON, at most 1 KiB, published with QoS 1 and never retained:
//
//	{"v":1,"reason":"rollout","rollout_id":"0190…","spread_seconds":30,"at":"2026-11-01T12:00:00Z"}
//
//	v               required; 1. Other versions are ignored.
//	reason          optional token (letters, digits, . _ - :), at most 64 bytes
//	rollout_id      optional token, at most 128 bytes
//	spread_seconds  optional number; each device waits a uniformly random
//	                delay in [0, spread) before checking in, so that a
//	                broadcast to 100,000 devices arrives over the spread and
//	                not at once (0 for per-device wake-ups). Clamped.
//	at              optional RFC 3339 time of publication
//
// # Sessions
//
// The subscriber connects with its device id as client id and uses a
// clean session (see MQTTSubscriber): the broker keeps nothing for
// offline devices, so a fleet reconnecting after an outage gets no backlog
// of stale wake-ups at once, and polling covers what was missed. It
// reconnects with jittered exponential backoff (full jitter, capped at
// Config.MaxReconnectInterval), so a fleet that lost the broker together
// does not reconnect together.
//
// # Broker configuration (Mosquitto 2.x)
//
// The broker must let the server publish under the prefix and let each
// device read only its own topic and its organization's broadcast, and
// publish nothing. Devices log in with their device id as username; on
// their listener use_username_as_clientid makes it the client id too, so
// one device cannot take over another's connection by claiming its client
// id. (With TLS client certificates whose CN is the device id, set
// require_certificate and use_identity_as_username on that listener
// instead of passwords.) The server logs in on a separate listener, where
// its random client id suffix is kept. Retained messages are disabled
// outright, and packets are capped far above a wake-up's size.
//
// mosquitto.conf:
//
//	per_listener_settings false
//	allow_anonymous false
//	password_file /etc/mosquitto/passwd
//	acl_file /etc/mosquitto/steward.acl
//	retain_available false
//	max_packet_size 4096
//
//	# devices
//	listener 8883
//	certfile /etc/mosquitto/broker.pem
//	keyfile /etc/mosquitto/broker.key
//	use_username_as_clientid true
//
//	# the Steward server, on an internal address
//	listener 8884 10.0.0.5
//	certfile /etc/mosquitto/broker.pem
//	keyfile /etc/mosquitto/broker.key
//
// steward.acl, for prefix "steward" (one user block per device,
// generated from the inventory; reload with SIGHUP after enrollments):
//
//	user steward-server
//	topic write steward/#
//
//	pattern read steward/+/devices/%u/wake
//
//	user 0190a3b4-7c2e-7f00-8000-000000000001
//	topic read steward/acme/wake
//
// The pattern line lets every device read its own topic (device ids are
// unique across organizations); the user blocks add each device's
// organization broadcast. Device usernames must be valid ids: Mosquitto
// 2.0 substitutes a / in a username as is (user "x/y" may read
// steward/+/devices/x/y/wake), so only issue credentials for names
// CheckID accepts, as server-assigned device ids are. For large fleets the
// dynamic-security plugin expresses the same with one role per
// organization instead of one block per device. Whichever is used, a
// device that is compromised can read only its own wake-ups and its
// organization's, and can publish nothing. Package internal/wake's tests
// run this configuration against a private Mosquitto.
package wake
