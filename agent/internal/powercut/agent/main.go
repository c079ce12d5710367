// Command agent is the power-loss tests' agent; see package powercut.
package main

import (
	"os"

	"github.com/steward-iot/steward/agent/internal/powercut"
)

func main() { os.Exit(powercut.Main(os.Getenv(powercut.Env))) }
