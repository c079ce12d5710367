package install

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestShellCheck: exit 0 passes, a non-zero exit fails quoting stderr, and
// a check whose children hang (holding the output pipe) is killed with its
// whole process group at the timeout instead of hanging the agent.
func TestShellCheck(t *testing.T) {
	ctx := context.Background()
	if err := ShellCheck("true", time.Minute)(ctx); err != nil {
		t.Fatalf("true: %v", err)
	}
	err := ShellCheck("echo 'service down' >&2; exit 7", time.Minute)(ctx)
	if err == nil || !strings.Contains(err.Error(), "service down") || !strings.Contains(err.Error(), "exit status 7") {
		t.Fatalf("failing check: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- ShellCheck("sleep 60 | cat; sleep 60", 200*time.Millisecond)(ctx) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "timed out") {
			t.Fatalf("hung check: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a hung health check hung the caller")
	}
}
