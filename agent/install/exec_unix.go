//go:build unix

package install

import (
	"os/exec"
	"syscall"
)

// setProcessGroup runs the program in a process group of its own, so that
// a timeout kills what it started too (a shell script's dd, say), not just
// the shell.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
