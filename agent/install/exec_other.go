//go:build !unix

package install

import "os/exec"

// setProcessGroup leaves exec.CommandContext's default, killing the
// program itself, where there are no Unix process groups.
func setProcessGroup(*exec.Cmd) {}

// textBusy is Unix's ETXTBSY; elsewhere there is nothing to retry.
func textBusy(error) bool { return false }
