package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/steward-iot/steward/agent/proto"
)

// maxReportFile bounds the files FileReporter reads.
const maxReportFile = 1 << 20

// MeteredLink reports whether link is usually paid by volume (cellular,
// NB-IoT, LoRa), which the server weighs when scheduling large downloads.
func MeteredLink(link string) bool {
	switch link {
	case proto.LinkCellular, proto.LinkNBIoT, proto.LinkLoRa:
		return true
	}
	return false
}

// FileReporter reports from files and fixed settings; it rereads the files
// at each check-in, so an update that rewrites them is reported without a
// restart.
type FileReporter struct {
	// Version is the installed release version unless VersionFile is set.
	Version string
	// VersionFile holds the installed version (surrounding space ignored).
	VersionFile string
	// ComponentsFile, if set, holds a JSON array of proto.Component.
	ComponentsFile string
	Link           string
	Metered        bool
	// MaintenanceWindow: see proto.State.
	MaintenanceWindow string
	// StorageDir is where free storage is measured, e.g. the state
	// directory; empty reports 0.
	StorageDir string
	// PowerSupplyDir is the Linux power supply class directory; empty
	// means /sys/class/power_supply.
	PowerSupplyDir string
}

// Report implements Reporter.
func (f *FileReporter) Report(context.Context) (proto.CheckinRequest, error) {
	var req proto.CheckinRequest
	req.Installed.Version = f.Version
	if f.VersionFile != "" {
		b, err := readSmall(f.VersionFile)
		if err != nil {
			return req, err
		}
		req.Installed.Version = strings.TrimSpace(string(b))
	}
	if req.Installed.Version == "" {
		return req, errors.New("no installed version to report")
	}
	if f.ComponentsFile != "" {
		b, err := readSmall(f.ComponentsFile)
		if err != nil {
			return req, err
		}
		if err := json.Unmarshal(b, &req.Installed.Components); err != nil {
			return req, fmt.Errorf("%s: want a JSON array of {\"purl\", \"version\"}: %w", f.ComponentsFile, err)
		}
	}
	req.State = proto.State{
		Link:              f.Link,
		Metered:           f.Metered,
		MaintenanceWindow: f.MaintenanceWindow,
	}
	dir := f.PowerSupplyDir
	if dir == "" {
		dir = "/sys/class/power_supply"
	}
	req.State.BatteryPercent, req.State.OnMains = power(dir)
	if f.StorageDir != "" {
		free, err := freeBytes(f.StorageDir)
		if err != nil {
			return req, fmt.Errorf("measuring free storage: %w", err)
		}
		req.State.FreeStorage = free
	}
	return req, nil
}

func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxReportFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxReportFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxReportFile)
	}
	return b, nil
}

// power reads the Linux power supply class: the first battery's capacity
// (nil without a battery), and whether the device runs on external power.
// Without any readable supply the device is taken to be on mains.
func power(dir string) (battery *int, onMains bool) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, true
	}
	var external, online, charging bool
	for _, e := range entries {
		attr := func(name string) string {
			b, _ := os.ReadFile(filepath.Join(dir, e.Name(), name))
			return strings.TrimSpace(string(b))
		}
		switch attr("type") {
		case "Battery":
			if battery != nil {
				continue
			}
			if pct, err := strconv.Atoi(attr("capacity")); err == nil && pct >= 0 && pct <= 100 {
				battery = &pct
				// "Not charging" means full or held back while on power.
				status := attr("status")
				charging = status == "Charging" || status == "Full" || status == "Not charging"
			}
		case "Mains", "USB", "USB_C", "USB_PD", "Wireless":
			external = true
			online = online || attr("online") == "1"
		}
	}
	switch {
	case battery == nil:
		return nil, true // nothing else can power it
	case external:
		return battery, online
	}
	return battery, charging
}
