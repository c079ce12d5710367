package install

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
	"unicode/utf8"
)

// Exit codes with a meaning in the hook and script protocols.
const (
	// ExitUnsupported: the hook or sub-command is not supported.
	ExitUnsupported = 3
	// ExitNoSpace: the slot or the file system is too small for the image.
	ExitNoSpace = 4
)

const (
	// stderrTail is how much of a program's stderr an error quotes.
	stderrTail = 2048
	// waitDelay lets a killed program's stray children go: after it, the
	// pipes they hold are closed and Wait returns.
	waitDelay = 2 * time.Second
	// defaultPath serves hooks when the agent itself runs without PATH.
	defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// program is one run of an external program (hook or script).
type program struct {
	what    string // for errors: "hook arm", "script install"
	path    string
	args    []string
	env     []string
	dir     string
	timeout time.Duration
	// stdout receives the output. Without it, maxOut > 0 captures up to
	// maxOut bytes and fails the run if there is more; maxOut == 0 keeps
	// only the last bytes, for error messages.
	stdout io.Writer
	maxOut int
}

// programResult is what a program that ran to its exit said.
type programResult struct {
	code       int
	stdout     []byte // captured stdout (maxOut > 0)
	stderr     string // last stderrTail bytes, printable
	stdoutTail string // last stderrTail bytes of stdout (maxOut == 0), printable
}

// errMsg describes a failed exit for an error message: the end of stderr,
// or of stdout when stderr is empty.
func (r programResult) errMsg() string {
	msg := r.stderr
	if msg == "" {
		msg = r.stdoutTail
	}
	if msg == "" {
		return fmt.Sprintf("exit status %d", r.code)
	}
	return fmt.Sprintf("exit status %d: %s", r.code, msg)
}

// run starts p with /dev/null as stdin and waits for it. A non-zero exit
// status is not an error: the caller gives exit codes their meaning. An
// error means the program could not start, was killed (timeout, ctx), or
// printed more than allowed.
func (p program) run(ctx context.Context) (programResult, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, p.timeout, errProgramTimeout)
	defer cancel()
	capture := &cappedBuffer{max: p.maxOut}
	outTail := &tailBuffer{max: stderrTail}
	stderr := &tailBuffer{max: stderrTail}
	newCmd := func() *exec.Cmd {
		cmd := exec.CommandContext(ctx, p.path, p.args...)
		cmd.Env = p.env
		cmd.Dir = p.dir
		setProcessGroup(cmd)
		cmd.WaitDelay = waitDelay
		switch {
		case p.stdout != nil:
			cmd.Stdout = p.stdout
		case p.maxOut > 0:
			cmd.Stdout = capture
		default:
			cmd.Stdout = outTail
		}
		cmd.Stderr = stderr
		return cmd
	}
	cmd := newCmd()
	err := cmd.Start()
	// ETXTBSY: another goroutine forked while the program file was still
	// open for writing (a hook just installed); the fork's copy of that
	// descriptor closes at its exec, so a moment later the start works.
	for try := 0; textBusy(err) && try < 5; try++ {
		time.Sleep(10 * time.Millisecond << try)
		cmd = newCmd()
		err = cmd.Start()
	}
	if err == nil {
		err = cmd.Wait()
	}
	res := programResult{stdout: capture.buf, stderr: printable(stderr.bytes()), stdoutTail: printable(outTail.bytes())}
	if cmd.ProcessState != nil {
		res.code = cmd.ProcessState.ExitCode()
	}
	switch {
	case context.Cause(ctx) == errProgramTimeout:
		return res, fmt.Errorf("%s: timed out after %s and was killed", p.what, p.timeout)
	case ctx.Err() != nil:
		return res, fmt.Errorf("%s: %w", p.what, ctx.Err())
	case capture.over:
		return res, fmt.Errorf("%s: printed more than %d bytes", p.what, p.maxOut)
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		if res.code < 0 { // killed by a signal
			return res, fmt.Errorf("%s: %v; stderr: %s", p.what, exitErr, res.stderr)
		}
		return res, nil
	}
	if err != nil {
		return res, fmt.Errorf("%s: %w", p.what, err)
	}
	return res, nil
}

// errProgramTimeout tells the program's own timeout from the caller's
// deadline, which is reported as the caller's context error.
var errProgramTimeout = errors.New("program timeout")

// cappedBuffer keeps up to max bytes and refuses more, which stops the
// copy from the program's stdout: it then dies of SIGPIPE or EPIPE.
type cappedBuffer struct {
	buf  []byte
	max  int
	over bool
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if len(b.buf)+len(p) > b.max {
		b.over = true
		return 0, errTooMuch
	}
	b.buf = append(b.buf, p...)
	return len(p), nil
}

// tailBuffer keeps the last max bytes written to it; a program's last
// words usually say what went wrong.
type tailBuffer struct {
	buf []byte
	max int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) >= b.max {
		b.buf = append(b.buf[:0], p[len(p)-b.max:]...)
		return n, nil
	}
	if over := len(b.buf) + len(p) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	b.buf = append(b.buf, p...)
	return n, nil
}

func (b *tailBuffer) bytes() []byte { return b.buf }

// printable makes program output safe to put in an error message and a
// log line: valid UTF-8, no control characters, one line.
func printable(p []byte) string {
	s := strings.ToValidUTF8(string(p), "?")
	var b strings.Builder
	for _, r := range strings.TrimSpace(s) {
		switch {
		case r == '\n':
			b.WriteString(" | ")
		case r == '\t':
			b.WriteByte(' ')
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == utf8.RuneError ||
			(r >= 0x2028 && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069):
			// Controls, line separators and bidi overrides could make a
			// log line say something else than it does.
			b.WriteByte('?')
		default:
			b.WriteRune(r)
		}
	}
	out := b.String()
	if len(out) > stderrTail {
		// " | " for newlines can make it longer than the tail it came from.
		cut := len(out) - stderrTail
		for cut < len(out) && !utf8.RuneStart(out[cut]) {
			cut++
		}
		out = "..." + out[cut:]
	}
	return out
}

// baseEnv is the environment every hook and script starts from: PATH and
// the configured extra entries. The agent's own environment is not passed
// on, so that nothing in it leaks to vendor programs by accident.
func baseEnv(extra []string) []string {
	path := os.Getenv("PATH")
	if path == "" {
		path = defaultPath
	}
	return append([]string{"PATH=" + path}, extra...)
}

// checkEnv validates configured NAME=value entries.
func checkEnv(env []string) error {
	for _, kv := range env {
		name, _, ok := strings.Cut(kv, "=")
		switch {
		case !ok || name == "":
			return fmt.Errorf("environment entry %q is not NAME=value", kv)
		case strings.ContainsRune(kv, 0):
			return fmt.Errorf("environment entry %q contains a NUL byte", name)
		case strings.HasPrefix(name, "STEWARD_"):
			return fmt.Errorf("environment entry %s: names starting with STEWARD_ are set by the installer", name)
		case name == "PATH":
			// allowed: overrides the inherited PATH, since it comes later
		}
	}
	return nil
}

// checkExecutable checks that path is a regular file someone may execute.
func checkExecutable(what, path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: %s is not a regular file", what, path)
	}
	if fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s: %s is not executable (chmod +x)", what, path)
	}
	return nil
}

// imageEnv describes a release to a hook or script.
func imageEnv(s Slot) []string {
	return []string{
		"STEWARD_RELEASE_ID=" + s.ReleaseID,
		"STEWARD_VERSION=" + s.Version,
		fmt.Sprintf("STEWARD_COUNTER=%d", s.Counter),
		"STEWARD_SHA256=" + s.SHA256,
		fmt.Sprintf("STEWARD_LENGTH=%d", s.Length),
	}
}

// ShellCheck returns a check that runs cmdline with /bin/sh -c, for health
// checks an operator configures: in its own process group, killed whole
// after timeout (a hung child cannot keep the agent waiting), with only the
// end of its output kept for the error.
func ShellCheck(cmdline string, timeout time.Duration) func(context.Context) error {
	return func(ctx context.Context) error {
		res, err := program{what: "health check", path: "/bin/sh", args: []string{"-c", cmdline},
			env: os.Environ(), timeout: timeout}.run(ctx)
		if err != nil {
			return err
		}
		if res.code != 0 {
			return fmt.Errorf("health check %q: %s", cmdline, res.errMsg())
		}
		return nil
	}
}
