package server_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/steward-iot/steward/internal/audit"
	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/release"
	"github.com/steward-iot/steward/internal/rollout"
	"github.com/steward-iot/steward/internal/store"
	"github.com/steward-iot/steward/internal/store/storetest"
)

// replica is one `steward serve` process.
type replica struct {
	name, url string
	cmd       *exec.Cmd
	mu        sync.Mutex
	log       bytes.Buffer
}

func (r *replica) logged(s string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Contains(r.log.String(), s)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startReplica(t *testing.T, bin, name, dsn, data string) *replica {
	t.Helper()
	addr := freeAddr(t)
	r := &replica{name: name, url: "http://" + addr}
	r.cmd = exec.Command(bin, "serve", "--addr", addr, "--data", data, "--bootstrap-org", "acme")
	r.cmd.Env = append(os.Environ(), "STEWARD_DB="+dsn, "STEWARD_ROLLOUT_INTERVAL=200ms")
	stderr, err := r.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			r.mu.Lock()
			r.log.WriteString(sc.Text() + "\n")
			r.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
		if t.Failed() {
			t.Logf("log of %s:\n%s", r.name, r.log.String())
		}
	})
	waitFor(t, 30*time.Second, name+" to serve", func() bool {
		res, err := http.Get(r.url + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	})
	return r
}

func waitFor(t *testing.T, limit time.Duration, what string, ok func() bool) {
	t.Helper()
	end := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(end) {
			t.Fatalf("gave up waiting %v for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSchedulerElectionAcrossProcesses runs two `steward serve` processes
// on one PostgreSQL database, kills the elected scheduler's process with
// SIGKILL mid-rollout, and checks that the other takes over and that every
// phase was entered exactly once: one transition row and one audit event
// per phase, none missing, none twice.
func TestSchedulerElectionAcrossProcesses(t *testing.T) {
	if !slices.Contains(storetest.Dialects(t), store.Postgres) {
		t.Skip("needs PostgreSQL")
	}
	bin := filepath.Join(t.TempDir(), "steward")
	build := exec.Command("go", "build", "-o", bin, "github.com/steward-iot/steward/cmd/steward")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dsn := storetest.DSN(t, store.Postgres)
	dataA := t.TempDir()
	a := startReplica(t, bin, "A", dsn, dataA)
	b := startReplica(t, bin, "B", dsn, t.TempDir())
	tok, err := os.ReadFile(filepath.Join(dataA, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	api := func(base *replica, method, path string, body, out any) {
		t.Helper()
		l := &live{t: t, url: base.url, token: strings.TrimSpace(string(tok))}
		l.admin(method, path, body, out)
	}
	const leading = "rollout scheduler: leading"
	waitFor(t, 10*time.Second, "a leader", func() bool { return a.logged(leading) || b.logged(leading) })
	leader, follower := a, b
	if b.logged(leading) {
		leader, follower = b, a
	}
	if follower.logged(leading) {
		t.Fatal("both replicas lead")
	}

	api(a, "POST", "/api/v1/orgs/acme/products", inventory.CreateProductRequest{Slug: "gw", Name: "GW", HardwareID: "gw-hw",
		Capability: inventory.CapabilityAB, LinkClass: "wifi"}, nil)
	l := &live{t: t, url: a.url, token: strings.TrimSpace(string(tok))}
	var rel release.Release
	api(a, "POST", "/api/v1/orgs/acme/releases", release.CreateReleaseRequest{Product: "gw", Version: "2.0",
		Artifacts: []release.ArtifactRef{{ID: l.upload("fw.img", []byte("image")).ID}}}, &rel)
	// No device is in the target, so each phase is empty and advances
	// once its soak time passes: six phases, five transitions, ~10 s.
	phases := []rollout.Phase{{Percent: 1, MinSoakSeconds: 2}, {Percent: 5, MinSoakSeconds: 2}, {Percent: 10, MinSoakSeconds: 2},
		{Percent: 25, MinSoakSeconds: 2}, {Percent: 50, MinSoakSeconds: 2}, {Percent: 100}}
	var r rollout.Rollout
	api(a, "POST", "/api/v1/orgs/acme/rollouts", rollout.CreateRequest{ReleaseID: rel.ID, TargetQuery: `product = "gw"`,
		Urgency: rollout.UrgencyScheduled, Phases: phases}, &r)

	progress := func(via *replica) rollout.Progress {
		var pr rollout.Progress
		api(via, "GET", "/api/v1/orgs/acme/rollouts/"+r.ID, nil, &pr)
		return pr
	}
	waitFor(t, 15*time.Second, "the first phase transition", func() bool { return progress(follower).Phase >= 1 })
	if err := leader.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = leader.cmd.Wait()
	killedAt := progress(follower).Phase
	waitFor(t, 10*time.Second, "the survivor to lead", func() bool { return follower.logged(leading) })
	waitFor(t, 25*time.Second, "the rollout to complete", func() bool { return progress(follower).State == rollout.StateCompleted })
	if killedAt >= len(phases)-1 {
		t.Fatalf("the leader was killed only after the last phase (%d): the takeover moved nothing", killedAt)
	}

	pr := progress(follower)
	var got []int
	for _, tr := range pr.Transitions {
		got = append(got, tr.Phase)
	}
	if want := []int{0, 1, 2, 3, 4, 5}; !slices.Equal(got, want) {
		t.Fatalf("transitions %v, want %v", got, want)
	}
	var events struct {
		Items []audit.Event `json:"items"`
	}
	api(follower, "GET", "/api/v1/orgs/acme/audit?action=rollout.", nil, &events)
	advances := map[string]int{}
	completes := 0
	for _, e := range events.Items {
		switch e.Action {
		case "rollout.advance":
			var d struct {
				To int `json:"to_phase"`
			}
			if err := json.Unmarshal(e.Details, &d); err != nil {
				t.Fatal(err)
			}
			advances[fmt.Sprint(d.To)]++
		case "rollout.complete":
			completes++
		}
	}
	for p := 1; p < len(phases); p++ {
		if n := advances[fmt.Sprint(p)]; n != 1 {
			t.Errorf("phase %d entered %d times in the audit log, want once (%v)", p, n, advances)
		}
	}
	if len(advances) != len(phases)-1 || completes != 1 {
		t.Fatalf("audit: advances %v, completes %d", advances, completes)
	}
	t.Logf("leader %s killed at phase %d; %s took over and completed the rollout", leader.name, killedAt, follower.name)
}
