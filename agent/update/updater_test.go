package update_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/steward-iot/steward/agent/client"
	"github.com/steward-iot/steward/agent/install"
	"github.com/steward-iot/steward/agent/proto"
	"github.com/steward-iot/steward/agent/update"
	"github.com/steward-iot/steward/internal/inventory"
	"github.com/steward-iot/steward/internal/release"
	"github.com/steward-iot/steward/internal/rollout"
	"github.com/steward-iot/steward/internal/server/servertest"
	"github.com/steward-iot/steward/internal/store"
)

// fleet is a live server with releases 1.0.0 and 1.1.0 of product gw.
type fleet struct {
	srv              *servertest.Server
	r1, r2           release.Release
	img1, img2       []byte
	dirRoot, imgRoot []byte
}

func newFleet(t *testing.T) *fleet {
	t.Helper()
	f := &fleet{srv: servertest.Start(t, store.SQLite)}
	f.srv.Do("POST", "/api/v1/orgs/acme/products", inventory.CreateProductRequest{Slug: "gw", Name: "GW", HardwareID: "gw-hw",
		Capability: inventory.CapabilityAB, LinkClass: "wifi"}, nil)
	f.img1 = bytes.Repeat([]byte("release one "), 10_000)
	f.img2 = append(bytes.Clone(f.img1), []byte("and the fix")...)
	f.r1 = f.srv.Release("gw", "1.0.0", f.img1, true)
	f.r2 = f.srv.Release("gw", "1.1.0", f.img2, true)
	f.dirRoot, f.imgRoot = f.srv.Roots()
	return f
}

// device enrolls a device running 1.0.0 on inst, assigned 1.1.0, and
// returns its updater and client.
func (f *fleet) device(t *testing.T, serial string, inst install.Installer, health func(context.Context) error) (*update.Updater, *client.Client) {
	t.Helper()
	dir := t.TempDir()
	id, c := f.srv.Enroll(filepath.Join(dir, "key"), "gw-hw", serial)
	if _, err := c.Checkin(context.Background(), proto.CheckinRequest{Installed: proto.Installed{Version: "1.0.0"}}); err != nil {
		t.Fatal(err)
	}
	f.srv.Do("PUT", "/api/v1/orgs/acme/devices/"+id+"/assignment", rollout.AssignRequest{ReleaseID: f.r2.ID}, nil)
	if p, ok := inst.(install.Provisioner); ok {
		fp := filepath.Join(dir, "factory.img")
		if err := os.WriteFile(fp, f.img1, 0o600); err != nil {
			t.Fatal(err)
		}
		img, err := install.FileImage(fp, f.r1.ID, "1.0.0", f.r1.Counter)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Provision(context.Background(), img); err != nil {
			t.Fatal(err)
		}
	}
	if err := inst.Boot(context.Background()); err != nil {
		t.Fatal(err)
	}
	q, err := update.OpenStatusQueue(filepath.Join(dir, "status"))
	if err != nil {
		t.Fatal(err)
	}
	u := &update.Updater{
		Engine: &update.Engine{Server: f.srv.URL, Org: "acme", Device: update.Device{ID: id, HardwareID: "gw-hw"},
			Token: func() string {
				tok, err := c.Token(context.Background())
				if err != nil {
					t.Error(err)
				}
				return tok
			},
			DirectorRoot: f.dirRoot, ImageRoot: f.imgRoot, StateDir: filepath.Join(dir, "tuf"),
			Downloader: update.Downloader{Attempts: 2, Backoff: time.Millisecond}},
		Installer: inst, Queue: q, Reporter: c, StateDir: dir, Health: health, FactoryCounter: f.r1.Counter,
	}
	return u, c
}

// history is the device's update history as the server recorded it:
// "step" or "step/reason", oldest first.
func (f *fleet) history(t *testing.T, deviceID string) []string {
	t.Helper()
	var page struct {
		Items []rollout.UpdateEvent `json:"items"`
	}
	f.srv.Do("GET", "/api/v1/orgs/acme/devices/"+deviceID+"/updates?limit=100", nil, &page)
	var out []string
	for _, e := range page.Items {
		s := e.Step
		if e.ReasonCode != "" {
			s += "/" + e.ReasonCode
		}
		out = append(out, s)
	}
	return out
}

func counter(t *testing.T, u *update.Updater) int64 {
	t.Helper()
	n, err := u.InstalledCounter()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestUpdaterCommits carries an update through on ab-dir: the new slot
// runs, committed, the counter rises, and the server's history holds every
// step once, in order.
func TestUpdaterCommits(t *testing.T) {
	f := newFleet(t)
	slots, err := install.NewDirAB(t.TempDir(), install.DirABOptions{})
	if err != nil {
		t.Fatal(err)
	}
	healthChecks := 0
	u, _ := f.device(t, "UPD-COMMIT", slots, func(context.Context) error { healthChecks++; return nil })
	if n := counter(t, u); n != f.r1.Counter {
		t.Fatalf("counter before the update %d, want the factory %d", n, f.r1.Counter)
	}
	out, err := u.Update(context.Background())
	if err != nil || out != update.OutcomeCommitted {
		t.Fatalf("Update: %v %v", out, err)
	}
	st, _ := slots.Status(context.Background())
	if st.Trial || st.Booted.ReleaseID != f.r2.ID || st.Booted.Name != "b" || healthChecks != 1 {
		t.Fatalf("after the update: %+v, %d health checks", st, healthChecks)
	}
	if n := counter(t, u); n != f.r2.Counter {
		t.Fatalf("counter %d, want %d", n, f.r2.Counter)
	}
	want := []string{"downloading", "downloaded", "installing", "rebooting", "committed"}
	if got := f.history(t, u.Engine.Device.ID); !equal(got, want) {
		t.Fatalf("history %v, want %v", got, want)
	}
	// Offered again, the running release is not installed twice.
	if out, err := u.Update(context.Background()); err != nil || out != update.OutcomeCurrent {
		t.Fatalf("second Update: %v %v", out, err)
	}
}

// TestUpdaterHealthFailureRollsBack: a new image that never passes its
// health check gets every trial boot the bootloader allows, then the old
// slot runs again, the counter stays, and the server hears "rolled-back".
func TestUpdaterHealthFailureRollsBack(t *testing.T) {
	f := newFleet(t)
	slots, err := install.NewDirAB(t.TempDir(), install.DirABOptions{MaxAttempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	checks := 0
	u, _ := f.device(t, "UPD-UNHEALTHY", slots, func(context.Context) error {
		checks++
		return errors.New("service did not come up")
	})
	out, err := u.Update(context.Background())
	if err != nil || out != update.OutcomeRolledBack {
		t.Fatalf("Update: %v %v", out, err)
	}
	st, _ := slots.Status(context.Background())
	if st.Trial || st.Booted.ReleaseID != f.r1.ID || st.Booted.Name != "a" {
		t.Fatalf("after the failed update the device runs %+v, want 1.0.0 in slot a", st)
	}
	if checks != 2 {
		t.Fatalf("%d health checks, want one per trial boot (2)", checks)
	}
	if n := counter(t, u); n != f.r1.Counter {
		t.Fatalf("counter %d after a rollback, want %d", n, f.r1.Counter)
	}
	got := f.history(t, u.Engine.Device.ID)
	if len(got) == 0 || got[len(got)-1] != "rolled-back/health-check-failed" {
		t.Fatalf("history %v, want it to end rolled-back/health-check-failed", got)
	}
}

// TestUpdaterSingleSlotCannotGoBack: on a single slot a failed health
// check cannot be undone; the device says so instead of claiming a rollback.
func TestUpdaterSingleSlotCannotGoBack(t *testing.T) {
	f := newFleet(t)
	slot, err := install.NewSingleSlot(t.TempDir(), install.SingleSlotOptions{MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := f.device(t, "UPD-SINGLE", slot, func(context.Context) error { return errors.New("unhealthy") })
	out, err := u.Update(context.Background())
	if out != update.OutcomeFailed || err == nil {
		t.Fatalf("Update: %v %v, want failed with an error", out, err)
	}
	got := f.history(t, u.Engine.Device.ID)
	if len(got) == 0 || got[len(got)-1] != "failed/rollback-refused" {
		t.Fatalf("history %v, want it to end failed/rollback-refused", got)
	}
}

// TestUpdaterInstallFailureKeepsTheOldImage: an install that fails (here:
// the slot cannot take the image) reports failed with a reason, keeps the
// running image and the counter, and leaves nothing armed.
func TestUpdaterInstallFailureKeepsTheOldImage(t *testing.T) {
	f := newFleet(t)
	slots, err := install.NewDirAB(t.TempDir(), install.DirABOptions{})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := f.device(t, "UPD-INSTALLFAIL", failingInstall{slots}, nil)
	out, err := u.Update(context.Background())
	if out != update.OutcomeFailed || !errors.Is(err, install.ErrNoSpace) {
		t.Fatalf("Update: %v %v, want failed with ErrNoSpace", out, err)
	}
	st, _ := slots.Status(context.Background())
	if st.Armed != nil || st.Booted.ReleaseID != f.r1.ID || counter(t, u) != f.r1.Counter {
		t.Fatalf("after a failed install: %+v counter %d", st, counter(t, u))
	}
	got := f.history(t, u.Engine.Device.ID)
	if len(got) == 0 || got[len(got)-1] != "failed/insufficient-storage" {
		t.Fatalf("history %v, want it to end failed/insufficient-storage", got)
	}
}

// TestUpdaterDownloadOnly fetches and verifies without installing; the
// later update installs without downloading again.
func TestUpdaterDownloadOnly(t *testing.T) {
	f := newFleet(t)
	slots, err := install.NewDirAB(t.TempDir(), install.DirABOptions{})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := f.device(t, "UPD-DLONLY", slots, nil)
	if out, err := u.DownloadOnly(context.Background()); err != nil || out != update.OutcomeDownloaded {
		t.Fatalf("DownloadOnly: %v %v", out, err)
	}
	if st, _ := slots.Status(context.Background()); st.Armed != nil || st.Booted.ReleaseID != f.r1.ID {
		t.Fatalf("download-only installed something: %+v", st)
	}
	if out, err := u.Update(context.Background()); err != nil || out != update.OutcomeCommitted {
		t.Fatalf("Update: %v %v", out, err)
	}
	want := []string{"downloading", "downloaded", "installing", "rebooting", "committed"}
	if got := f.history(t, u.Engine.Device.ID); !equal(got, want) {
		t.Fatalf("history %v, want %v (each step once)", got, want)
	}
}

// failingInstall is an ab-dir installer whose Install always finds no
// space.
type failingInstall struct{ *install.DirAB }

func (failingInstall) Install(context.Context, install.Image) error {
	return install.ErrNoSpace
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestUpdaterReportsDownloadProgress: a long download reports its progress
// (here at every write), each report stored, with rising byte counts, so
// the server does not take a slow link for a stuck update.
func TestUpdaterReportsDownloadProgress(t *testing.T) {
	f := newFleet(t)
	slots, err := install.NewDirAB(t.TempDir(), install.DirABOptions{})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := f.device(t, "UPD-PROGRESS", slots, nil)
	u.ProgressEvery = time.Nanosecond
	if out, err := u.Update(context.Background()); err != nil || out != update.OutcomeCommitted {
		t.Fatalf("Update: %v %v", out, err)
	}
	var page struct {
		Items []rollout.UpdateEvent `json:"items"`
	}
	f.srv.Do("GET", "/api/v1/orgs/acme/devices/"+u.Engine.Device.ID+"/updates?limit=100", nil, &page)
	var done []int64
	for _, e := range page.Items {
		if e.Step == "downloading" && e.BytesDone != nil {
			done = append(done, *e.BytesDone)
		}
	}
	if len(done) < 2 {
		t.Fatalf("%d progress reports, want several for a %d-byte image", len(done), len(f.img2))
	}
	for i := 1; i < len(done); i++ {
		if done[i] <= done[i-1] || done[i] >= int64(len(f.img2)) {
			t.Fatalf("progress %v does not rise below the image's %d bytes", done, len(f.img2))
		}
	}
}

// TestUpdaterRollsBackByReRelease: rolling back a bad release means
// releasing the known-good image again with a higher counter; the device
// installs it like any release (the anti-rollback counter only rises) and
// runs the old bytes under the new release.
func TestUpdaterRollsBackByReRelease(t *testing.T) {
	f := newFleet(t)
	slots, err := install.NewDirAB(t.TempDir(), install.DirABOptions{})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := f.device(t, "UPD-REREL", slots, nil)
	if out, err := u.Update(context.Background()); err != nil || out != update.OutcomeCommitted {
		t.Fatalf("update to 1.1.0: %v %v", out, err)
	}
	// 1.1.0 is bad: assigning 1.0.0 again is refused by the device...
	f.srv.Do("PUT", "/api/v1/orgs/acme/devices/"+u.Engine.Device.ID+"/assignment", rollout.AssignRequest{ReleaseID: f.r1.ID}, nil)
	if out, err := u.Update(context.Background()); !errors.Is(err, update.ErrRollback) {
		t.Fatalf("going back to 1.0.0's counter: %v %v, want ErrRollback", out, err)
	}
	// ...so the known-good bytes are released again as 1.1.1.
	good := f.srv.Release("gw", "1.1.1", f.img1, true)
	f.srv.Do("PUT", "/api/v1/orgs/acme/devices/"+u.Engine.Device.ID+"/assignment", rollout.AssignRequest{ReleaseID: good.ID}, nil)
	if out, err := u.Update(context.Background()); err != nil || out != update.OutcomeCommitted {
		t.Fatalf("update to 1.1.1: %v %v", out, err)
	}
	got, err := os.ReadFile(slots.CurrentImage())
	st, _ := slots.Status(context.Background())
	if err != nil || !bytes.Equal(got, f.img1) || st.Booted.ReleaseID != good.ID || counter(t, u) != good.Counter {
		t.Fatalf("runs %+v (counter %d), want 1.0.0's bytes as release 1.1.1", st.Booted, counter(t, u))
	}
}
