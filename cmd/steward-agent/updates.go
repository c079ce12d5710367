package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/steward-iot/steward/agent/client"
	"github.com/steward-iot/steward/agent/install"
	"github.com/steward-iot/steward/agent/update"
)

// updateFlags configure installing updates in `run`.
type updateFlags struct {
	installer, slots, hooks, script string
	directorRoot, imageRoot         string
	factoryImage                    string
	factoryCounter                  int64
	healthCheck                     string
	healthTimeout                   time.Duration
	maxBoots                        int
}

func (u *updateFlags) register(f *pflag.FlagSet) {
	f.StringVar(&u.installer, "installer", "", "install updates with: "+strings.Join(install.Kinds(), ", ")+" (default: none, report only)")
	f.StringVar(&u.slots, "slots", "", "slots `DIR` of ab-dir and single-slot")
	f.StringVar(&u.hooks, "hooks", "", "hooks `DIR` (or one program) of ab-hooks")
	f.StringVar(&u.script, "script", "", "`PROGRAM` of the script installer")
	f.StringVar(&u.directorRoot, "director-root", "", "the director's root metadata `FILE` the device was provisioned with")
	f.StringVar(&u.imageRoot, "image-root", "", "the image repository's 1.root.json `FILE` the device was provisioned with")
	f.StringVar(&u.factoryImage, "factory-image", "", "image `FILE` that ab-dir or single-slot provisions on first start, as --version")
	f.Int64Var(&u.factoryCounter, "factory-counter", 0, "release counter of the factory image: the device refuses releases below it")
	f.StringVar(&u.healthCheck, "health-check", "", "shell `COMMAND` that exits 0 when a newly booted image works (default: none, always healthy)")
	f.DurationVar(&u.healthTimeout, "health-timeout", 5*time.Minute, "how long the health check may take")
	f.IntVar(&u.maxBoots, "max-boots", 3, "trial boots a new image gets before the bootloader goes back")
}

// build checks the flags and returns the runner's Updates constructor,
// or nil without --installer.
func (u *updateFlags) build(state, hardwareID, org, factoryVersion string, logTo io.Writer) (func(*client.Client, string) (*update.Updater, error), error) {
	if u.installer == "" {
		for name, v := range map[string]string{"--slots": u.slots, "--hooks": u.hooks, "--script": u.script, "--factory-image": u.factoryImage} {
			if v != "" {
				return nil, fmt.Errorf("%s needs --installer", name)
			}
		}
		return nil, nil
	}
	switch {
	case u.directorRoot == "" || u.imageRoot == "":
		return nil, errors.New("--installer needs --director-root and --image-root: the trusted roots the device was provisioned with")
	case org == "":
		return nil, errors.New("--installer needs --org: the organization whose image repository signs the releases")
	case hardwareID == "":
		return nil, errors.New("--installer needs --hardware-id: targets for other hardware are refused")
	}
	dirRoot, err := os.ReadFile(u.directorRoot)
	if err != nil {
		return nil, fmt.Errorf("--director-root: %w", err)
	}
	imgRoot, err := os.ReadFile(u.imageRoot)
	if err != nil {
		return nil, fmt.Errorf("--image-root: %w", err)
	}
	log := slog.New(slog.NewTextHandler(logTo, nil))
	inst, err := install.New(install.Config{Kind: u.installer, Dir: u.slots, StateDir: filepath.Join(state, "installer"),
		Hooks: u.hooks, Script: u.script, MaxAttempts: u.maxBoots, Logger: log})
	if err != nil {
		return nil, err
	}
	if u.factoryImage != "" {
		p, ok := inst.(install.Provisioner)
		if !ok {
			return nil, fmt.Errorf("--factory-image: the %s installer has no slots to provision", u.installer)
		}
		img, err := install.FileImage(u.factoryImage, "", factoryVersion, u.factoryCounter)
		if err != nil {
			return nil, fmt.Errorf("--factory-image: %w", err)
		}
		if err := p.Provision(context.Background(), img); err != nil && !errors.Is(err, install.ErrProvisioned) {
			return nil, fmt.Errorf("--factory-image: %w", err)
		}
	}
	var health func(context.Context) error
	if u.healthCheck != "" {
		health = install.ShellCheck(u.healthCheck, u.healthTimeout)
	}
	queue, err := update.OpenStatusQueue(filepath.Join(state, "update"))
	if err != nil {
		return nil, err
	}
	return func(c *client.Client, deviceID string) (*update.Updater, error) {
		return &update.Updater{
			Engine: &update.Engine{Server: c.ServerURL(), Org: org,
				Device: update.Device{ID: deviceID, HardwareID: hardwareID},
				Token: func() string {
					// The updater's request fails with 401 when this is empty.
					tok, _ := c.Token(context.Background())
					return tok
				},
				DirectorRoot: dirRoot, ImageRoot: imgRoot, StateDir: filepath.Join(state, "update")},
			Installer: inst, Queue: queue, Reporter: c, StateDir: filepath.Join(state, "update"),
			Health: health, HealthTimeout: u.healthTimeout, FactoryCounter: u.factoryCounter, Logger: log,
		}, nil
	}, nil
}
