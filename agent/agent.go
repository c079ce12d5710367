// Package agent is the reference device side of Steward, the server that
// keeps IoT fleets patched. Vendors embed it in the software of their
// (Linux-class) devices; cmd/steward-agent is the reference agent binary.
//
// Package identity generates and keeps the device's own key pair, whose
// private key never leaves the device, and package atomicfile stores such
// state crash-safely. On that identity, package client speaks the device API
// (package proto: enrollment, authentication, check-in) and package runner
// is the agent's main loop; package simulator runs many virtual devices for
// load tests, and package fakeserver fakes the server for tests. Verified
// updates do not exist yet.
//
// The agent deliberately imports nothing from the server's internal
// packages, to stay small and independent of server code.
package agent

// ProtocolVersion is the version of the device protocol: what a device and
// the server must agree on, such as key algorithms and signature formats.
// Bump it, and add a line below, whenever a change needs both sides to know.
//
// History:
//
//	1: initial: device identity keys (Ed25519, ECDSA P-256)
const ProtocolVersion = 1
