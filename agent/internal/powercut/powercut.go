// Package powercut is the agent of the power-loss tests: one run boots the
// device (an ab-dir installer), resumes what an earlier run left, and
// updates, dying by SIGKILL at a chosen crash point as a power cut would:
// no deferred code runs, nothing is flushed. The test spawns its command
// (./agent) over a thousand times, so it is built without the race
// detector.
package powercut

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/steward-iot/steward/agent/client"
	"github.com/steward-iot/steward/agent/crashpoint"
	"github.com/steward-iot/steward/agent/identity"
	"github.com/steward-iot/steward/agent/install"
	"github.com/steward-iot/steward/agent/update"
)

// Env holds the JSON of a Config for the command.
const Env = "STEWARD_POWERCUT"

// Config is one run of the agent.
type Config struct {
	Server     string `json:"server"`
	DeviceDir  string `json:"device_dir"`
	DeviceID   string `json:"device_id"`
	HardwareID string `json:"hardware_id"`
	// CrashAt aborts the process at the CrashAt-th crash point; 0 never.
	CrashAt int `json:"crash_at"`
	// Record, if set, receives the name of every crash point hit.
	Record string `json:"record,omitempty"`
}

// Result is what a run that was not aborted prints.
type Result struct {
	Outcome string `json:"outcome"`
	Err     string `json:"err,omitempty"`
	Hits    int    `json:"hits"`
}

// BootRecord is what a run found booted, appended to boots.jsonl in the
// device dir before anything else happens.
type BootRecord struct {
	Slot      string `json:"slot"`
	ReleaseID string `json:"release_id"`
	Verified  bool   `json:"verified"` // the slot's bytes hash to its recorded sha256
	Trial     bool   `json:"trial"`
}

// Main runs the agent once with the configuration raw and returns the
// process exit status.
func Main(raw string) int {
	var cfg Config
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	hits := 0
	var rec *os.File
	if cfg.Record != "" {
		f, err := os.Create(cfg.Record)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		rec = f
	}
	crashpoint.Set(func(name string) {
		hits++
		if rec != nil {
			fmt.Fprintln(rec, name)
		}
		if hits == cfg.CrashAt {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal is on its way
		}
	})
	out, err := run(cfg)
	if rec != nil {
		rec.Close()
	}
	res := Result{Outcome: string(out), Hits: hits}
	if err != nil {
		res.Err = err.Error()
	}
	b, _ := json.Marshal(res)
	fmt.Println(string(b))
	return 0
}

func run(cfg Config) (update.Outcome, error) {
	ctx := context.Background()
	dir := cfg.DeviceDir
	key, _, err := identity.LoadOrCreate(filepath.Join(dir, "key"), identity.Ed25519)
	if err != nil {
		return "", err
	}
	c := client.New(cfg.Server, key, client.Options{})
	slots, err := install.NewDirAB(filepath.Join(dir, "slots"), install.DirABOptions{MaxAttempts: 3})
	if err != nil {
		return "", err
	}
	// The power-on: the emulated bootloader picks a slot.
	if err := slots.Boot(ctx); err != nil {
		return "", fmt.Errorf("boot: %w", err)
	}
	st, err := slots.Status(ctx)
	if err != nil {
		return "", err
	}
	br := BootRecord{Slot: st.Booted.Name, ReleaseID: st.Booted.ReleaseID, Trial: st.Trial,
		Verified: FileSHA256(slots.CurrentImage()) == st.Booted.SHA256 && st.Booted.SHA256 != ""}
	if err := appendLine(filepath.Join(dir, "boots.jsonl"), br); err != nil {
		return "", err
	}
	dirRoot, err := os.ReadFile(filepath.Join(dir, "director.root.json"))
	if err != nil {
		return "", err
	}
	imgRoot, err := os.ReadFile(filepath.Join(dir, "image.root.json"))
	if err != nil {
		return "", err
	}
	queue, err := update.OpenStatusQueue(filepath.Join(dir, "status"))
	if err != nil {
		return "", err
	}
	u := &update.Updater{
		Engine: &update.Engine{Server: cfg.Server, Org: "acme",
			Device: update.Device{ID: cfg.DeviceID, HardwareID: cfg.HardwareID},
			Token: func() string {
				tok, _ := c.Token(ctx)
				return tok
			},
			DirectorRoot: dirRoot, ImageRoot: imgRoot, StateDir: filepath.Join(dir, "tuf"),
			Downloader: update.Downloader{Attempts: 3, Backoff: time.Millisecond}},
		Installer: slots, Queue: queue, Reporter: c, StateDir: dir,
	}
	out, err := u.Resume(ctx)
	if err != nil && out != update.OutcomeFailed { // a failed attempt is tried again below
		return out, fmt.Errorf("resume: %w", err)
	}
	if out == update.OutcomeCommitted {
		return out, nil
	}
	return u.Update(ctx)
}

func appendLine(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// FileSHA256 is the hex sha256 of a file, or "" when it cannot be read.
func FileSHA256(p string) string {
	f, err := os.Open(p)
	if err != nil {
		return ""
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))
}
