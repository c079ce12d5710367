package runner

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/steward-iot/steward/agent/proto"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// supplies builds a fake /sys/class/power_supply: name -> attribute -> value.
func supplies(t *testing.T, s map[string]map[string]string) string {
	dir := t.TempDir()
	for name, attrs := range s {
		for attr, v := range attrs {
			writeFile(t, filepath.Join(dir, name, attr), v+"\n")
		}
	}
	return dir
}

func TestFileReporter(t *testing.T) {
	dir := t.TempDir()
	versionFile := filepath.Join(dir, "version")
	writeFile(t, versionFile, " 2.4.1\n")
	componentsFile := filepath.Join(dir, "components.json")
	writeFile(t, componentsFile, `[{"purl":"pkg:generic/openssl@3.0.13","version":"3.0.13"},{"purl":"pkg:generic/busybox@1.36.1"}]`)
	f := &FileReporter{
		Version:           "ignored: the file wins",
		VersionFile:       versionFile,
		ComponentsFile:    componentsFile,
		Link:              proto.LinkCellular,
		Metered:           true,
		MaintenanceWindow: "02:00-04:00 Europe/Berlin",
		StorageDir:        dir,
		PowerSupplyDir:    filepath.Join(dir, "no-such-dir"),
	}
	got, err := f.Report(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got.Installed.Version != "2.4.1" || len(got.Installed.Components) != 2 || got.Installed.Components[0].Version != "3.0.13" {
		t.Errorf("installed %+v", got.Installed)
	}
	s := got.State
	if s.BatteryPercent != nil || !s.OnMains || s.Link != proto.LinkCellular || !s.Metered ||
		s.MaintenanceWindow != "02:00-04:00 Europe/Berlin" || s.FreeStorage <= 0 {
		t.Errorf("state %+v", s)
	}

	// An update rewrites the version file; the next report shows it.
	writeFile(t, versionFile, "2.5.0")
	if got, _ := f.Report(context.Background()); got.Installed.Version != "2.5.0" {
		t.Errorf("version after the update: %q", got.Installed.Version)
	}
}

func TestFileReporterPower(t *testing.T) {
	battery := func(capacity, status string) map[string]string {
		return map[string]string{"type": "Battery", "capacity": capacity, "status": status}
	}
	mains := func(online string) map[string]string { return map[string]string{"type": "Mains", "online": online} }
	for _, c := range []struct {
		name     string
		supplies map[string]map[string]string
		battery  int // -1: none
		onMains  bool
	}{
		{"none", nil, -1, true},
		{"mains only", map[string]map[string]string{"AC": mains("1")}, -1, true},
		{"battery discharging", map[string]map[string]string{"BAT0": battery("57", "Discharging")}, 57, false},
		{"battery charging", map[string]map[string]string{"BAT0": battery("80", "Charging")}, 80, true},
		{"battery and mains online", map[string]map[string]string{"BAT0": battery("99", "Discharging"), "AC": mains("1")}, 99, true},
		{"battery and mains offline", map[string]map[string]string{"BAT0": battery("12", "Charging"), "AC": mains("0")}, 12, false},
		{"unreadable capacity", map[string]map[string]string{"BAT0": battery("n/a", "Discharging")}, -1, true},
	} {
		f := &FileReporter{Version: "1", PowerSupplyDir: supplies(t, c.supplies)}
		got, err := f.Report(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		b := -1
		if got.State.BatteryPercent != nil {
			b = *got.State.BatteryPercent
		}
		if b != c.battery || got.State.OnMains != c.onMains {
			t.Errorf("%s: battery %d on mains %v, want %d, %v", c.name, b, got.State.OnMains, c.battery, c.onMains)
		}
	}
}

func TestFileReporterErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	writeFile(t, bad, `{"purl":"not an array"}`)
	for _, c := range []struct {
		name    string
		f       FileReporter
		wantErr string
	}{
		{"no version", FileReporter{}, "no installed version"},
		{"missing version file", FileReporter{VersionFile: filepath.Join(dir, "missing")}, "no such file"},
		{"bad components", FileReporter{Version: "1", ComponentsFile: bad}, "JSON array"},
	} {
		if _, err := c.f.Report(context.Background()); err == nil || !strings.Contains(err.Error(), c.wantErr) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.wantErr)
		}
	}
}

func TestMeteredLink(t *testing.T) {
	for link, want := range map[string]bool{
		proto.LinkEthernet: false, proto.LinkWiFi: false,
		proto.LinkCellular: true, proto.LinkNBIoT: true, proto.LinkLoRa: true,
	} {
		if MeteredLink(link) != want {
			t.Errorf("MeteredLink(%s) = %v", link, !want)
		}
	}
}
