//go:build unix

package install

import (
	"errors"
	"os/exec"
	"syscall"
)

// textBusy says whether a program could not start because its file was
// still open for writing somewhere.
func textBusy(err error) bool { return errors.Is(err, syscall.ETXTBSY) }

// setProcessGroup runs the program in a process group of its own, so that
// a timeout kills what it started too (a shell script's dd, say), not just
// the shell.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
