// Package crashpoint forwards to agent/crashpoint while code moves there.
package crashpoint

import "github.com/steward-iot/steward/agent/crashpoint"

// Hit calls crashpoint.Hit.
func Hit(name string) { crashpoint.Hit(name) }

// Set calls crashpoint.Set.
func Set(f func(name string)) { crashpoint.Set(f) }
