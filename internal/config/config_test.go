package config

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// newFlags builds a flag set covering the value kinds steward uses.
func newFlags() *pflag.FlagSet {
	fs := pflag.NewFlagSet("steward", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.String("addr", ":8080", "listen address")
	fs.String("data", "/var/lib/steward", "data directory")
	fs.String("bootstrap-org", "", "organisation created on first start")
	fs.String("tls-key-file", "", "path to the TLS key")
	fs.String("config", "", "config file")
	fs.Duration("timeout", 5*time.Second, "request timeout")
	fs.Int("port", 8080, "port")
	fs.Bool("debug", false, "debug logging")
	fs.Float64("ratio", 0.5, "ratio")
	fs.StringSlice("tags", []string{"default"}, "tags")
	fs.IntSlice("ids", nil, "ids")
	fs.StringArray("names", nil, "names")
	return fs
}

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "steward.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func value(t *testing.T, fs *pflag.FlagSet, name string) string {
	t.Helper()
	f := fs.Lookup(name)
	if f == nil {
		t.Fatalf("no flag %q", name)
	}
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		return strings.Join(sv.GetSlice(), "|")
	}
	return f.Value.String()
}

func TestEnvName(t *testing.T) {
	for flag, want := range map[string]string{
		"addr":          "STEWARD_ADDR",
		"bootstrap-org": "STEWARD_BOOTSTRAP_ORG",
		"tls-key-file":  "STEWARD_TLS_KEY_FILE",
	} {
		if got := EnvName(flag); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", flag, got, want)
		}
	}
}

func TestApplyPrecedence(t *testing.T) {
	tests := []struct {
		name            string
		args, env, file string // "" means the level is absent
		want            string
	}{
		{name: "default", want: ":8080"},
		{name: "file over default", file: "file:1", want: "file:1"},
		{name: "env over default", env: "env:1", want: "env:1"},
		{name: "flag over default", args: "flag:1", want: "flag:1"},
		{name: "env over file", env: "env:1", file: "file:1", want: "env:1"},
		{name: "flag over file", args: "flag:1", file: "file:1", want: "flag:1"},
		{name: "flag over env", args: "flag:1", env: "env:1", want: "flag:1"},
		{name: "flag over env and file", args: "flag:1", env: "env:1", file: "file:1", want: "flag:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := newFlags()
			var args []string
			if tt.args != "" {
				args = []string{"--addr", tt.args}
			}
			if err := fs.Parse(args); err != nil {
				t.Fatal(err)
			}
			env := map[string]string{}
			if tt.env != "" {
				env["STEWARD_ADDR"] = tt.env
			}
			path := ""
			if tt.file != "" {
				path = writeFile(t, "addr: "+tt.file+"\n")
			}
			if err := Apply(fs, path, envOf(env)); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if got := value(t, fs, "addr"); got != tt.want {
				t.Errorf("addr = %q, want %q", got, tt.want)
			}
			// Anything but the default counts as supplied.
			if got, want := fs.Changed("addr"), tt.want != ":8080"; got != want {
				t.Errorf("Changed = %v, want %v", got, want)
			}
			if got := value(t, fs, "data"); got != "/var/lib/steward" || fs.Changed("data") {
				t.Errorf("data = %q (changed %v), want untouched default", got, fs.Changed("data"))
			}
		})
	}
}

// TestApplyAllLevelsAtOnce checks the levels resolve per flag, not per source.
func TestApplyAllLevelsAtOnce(t *testing.T) {
	fs := newFlags()
	if err := fs.Parse([]string{"--addr", "127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	path := writeFile(t, "addr: 127.0.0.1:3\ndata: /from/file\nport: 3\n")
	env := envOf(map[string]string{"STEWARD_ADDR": "127.0.0.1:2", "STEWARD_DATA": "/from/env"})
	if err := Apply(fs, path, env); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"addr":    "127.0.0.1:1", // flag
		"data":    "/from/env",   // env over file
		"port":    "3",           // file
		"timeout": "5s",          // default
	} {
		if got := value(t, fs, name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
}

func TestApplyChangedUntouched(t *testing.T) {
	tests := []struct {
		name string
		args []string
		flag string
		want string
	}{
		{name: "string", args: []string{"--data", "/cli"}, flag: "data", want: "/cli"},
		// Set to its default on purpose: Changed, not the value, decides.
		{name: "value equal to default", args: []string{"--port", "8080"}, flag: "port", want: "8080"},
		{name: "bool false", args: []string{"--debug=false"}, flag: "debug", want: "false"},
		{name: "slice", args: []string{"--tags", "cli"}, flag: "tags", want: "cli"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := newFlags()
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			path := writeFile(t, "data: /file\nport: 1\ndebug: true\ntags: [file]\n")
			env := envOf(map[string]string{
				"STEWARD_DATA": "/env", "STEWARD_PORT": "2", "STEWARD_DEBUG": "true", "STEWARD_TAGS": "env",
			})
			if err := Apply(fs, path, env); err != nil {
				t.Fatal(err)
			}
			if got := value(t, fs, tt.flag); got != tt.want {
				t.Errorf("%s = %q, want %q", tt.flag, got, tt.want)
			}
		})
	}
}

func TestApplyFileScalars(t *testing.T) {
	tests := []struct {
		name, yaml, flag, want string
	}{
		{"plain string", "addr: 127.0.0.1:9090", "addr", "127.0.0.1:9090"},
		{"quoted string", `data: "/var/lib/steward x"`, "data", "/var/lib/steward x"},
		{"int", "port: 9090", "port", "9090"},
		{"hex int as written", "port: 0x10", "port", "16"},
		{"bool", "debug: true", "debug", "true"},
		{"duration", "timeout: 1m30s", "timeout", "1m30s"},
		{"float", "ratio: 1e-3", "ratio", "0.001"},
		{"int into string flag", "bootstrap-org: 42", "bootstrap-org", "42"},
		{"-file flag is a plain path", "tls-key-file: /etc/steward/key.pem", "tls-key-file", "/etc/steward/key.pem"},
		{"alias", "data: &d /srv\naddr: *d", "addr", "/srv"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := newFlags()
			if err := Apply(fs, writeFile(t, tt.yaml), envOf(nil)); err != nil {
				t.Fatal(err)
			}
			if got := value(t, fs, tt.flag); got != tt.want {
				t.Errorf("%s = %q, want %q", tt.flag, got, tt.want)
			}
		})
	}
}

func TestApplySliceFlags(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		env  map[string]string
		flag string
		want string // items joined by "|"
	}{
		{name: "file list", yaml: "tags: [a, b]", flag: "tags", want: "a|b"},
		{name: "file block list", yaml: "tags:\n  - a\n  - b\n", flag: "tags", want: "a|b"},
		{name: "file list items kept whole", yaml: `tags: ["a,b", c]`, flag: "tags", want: "a,b|c"},
		{name: "file list of ints", yaml: "ids: [1, 2, 3]", flag: "ids", want: "1|2|3"},
		{name: "file list into string array", yaml: "names: [x, y]", flag: "names", want: "x|y"},
		{name: "file empty list clears default", yaml: "tags: []", flag: "tags", want: ""},
		{name: "file scalar is comma separated", yaml: "tags: a,b", flag: "tags", want: "a|b"},
		{name: "env is comma separated", env: map[string]string{"STEWARD_TAGS": "x,y"}, flag: "tags", want: "x|y"},
		{name: "env beats file list", yaml: "tags: [a]", env: map[string]string{"STEWARD_TAGS": "x"}, flag: "tags", want: "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := newFlags()
			path := ""
			if tt.yaml != "" {
				path = writeFile(t, tt.yaml)
			}
			if err := Apply(fs, path, envOf(tt.env)); err != nil {
				t.Fatal(err)
			}
			if got := value(t, fs, tt.flag); got != tt.want {
				t.Errorf("%s = %q, want %q", tt.flag, got, tt.want)
			}
			if !fs.Changed(tt.flag) {
				t.Errorf("%s not marked Changed", tt.flag)
			}
		})
	}
}

func TestApplyBadEnvValue(t *testing.T) {
	tests := []struct {
		env, value, want string
	}{
		{"STEWARD_TIMEOUT", "abc", `env STEWARD_TIMEOUT: invalid value "abc" for --timeout: `},
		{"STEWARD_PORT", "eighty", `env STEWARD_PORT: invalid value "eighty" for --port: `},
		{"STEWARD_DEBUG", "maybe", `env STEWARD_DEBUG: invalid value "maybe" for --debug: `},
		{"STEWARD_IDS", "1,x", `env STEWARD_IDS: invalid value "1,x" for --ids: `},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			err := Apply(newFlags(), "", envOf(map[string]string{tt.env: tt.value}))
			if err == nil {
				t.Fatal("Apply succeeded, want error")
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error = %q, want prefix %q", err, tt.want)
			}
		})
	}
}

func TestApplyBadEnvValuesAllReported(t *testing.T) {
	err := Apply(newFlags(), "", envOf(map[string]string{"STEWARD_PORT": "x", "STEWARD_TIMEOUT": "y"}))
	for _, want := range []string{"STEWARD_PORT", "STEWARD_TIMEOUT"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error = %v, want it to mention %s", err, want)
		}
	}
}

func TestApplyBadFileValue(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want string // after "config file <path>: "
	}{
		{"duration", "timeout: abc", `key timeout: invalid value "abc" for --timeout: `},
		{"int", "port: 80.5", `key port: invalid value "80.5" for --port: `},
		{"bool", "debug: yes please", `key debug: invalid value "yes please" for --debug: `},
		{"bad list item", "ids: [1, two]", `key ids: invalid list for --ids: `},
		{"list for scalar flag", "port: [1, 2]", "key port: a list is not valid for --port (type int)"},
		{"nested list item", "tags: [[a]]", "key tags: line 1: list items must be plain values"},
		{"nested map", "addr:\n  host: x\n", "key addr: nested maps are not supported for --addr"},
		{"null value", "addr:\n", `key addr: line 1: no value (write "" for an empty string)`},
		{"config key", "config: /etc/other.yaml", "key config: the config file path cannot be set from the config file"},
		{"top level list", "- addr", "top level must be a mapping"},
		{"two documents", "addr: a\n---\naddr: b\n", "only one YAML document is allowed"},
		{"invalid yaml", "addr: [", "yaml: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, tt.yaml)
			err := Apply(newFlags(), path, envOf(nil))
			if err == nil {
				t.Fatal("Apply succeeded, want error")
			}
			if want := "config file " + path + ": " + tt.want; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error = %q, want prefix %q", err, want)
			}
		})
	}
}

func TestApplyUnknownKey(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		wants []string
	}{
		{"typo with hint", "adr: x", []string{`unknown key "adr" (did you mean addr?)`}},
		{"underscore for dash", "bootstrap_org: x", []string{`unknown key "bootstrap_org" (did you mean bootstrap-org?)`}},
		{"no near flag", "completely-unrelated: x", []string{`unknown key "completely-unrelated"`}},
		{"transposition", "prot: 1", []string{`unknown key "prot" (did you mean port?)`}},
		{"every key reported", "adr: x\nprot: 1\n", []string{`unknown key "adr"`, `unknown key "prot"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, tt.yaml)
			fs := newFlags()
			err := Apply(fs, path, envOf(nil))
			if err == nil {
				t.Fatal("Apply succeeded, want error")
			}
			for _, want := range tt.wants {
				if want = "config file " + path + ": " + want; !strings.Contains(err.Error(), want) {
					t.Errorf("error = %q, want it to contain %q", err, want)
				}
			}
			if strings.Contains(err.Error(), "(did you mean )") {
				t.Errorf("error has an empty hint: %q", err)
			}
		})
	}
}

func TestApplyMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing.yaml")
	err := Apply(newFlags(), path, envOf(nil))
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Errorf("error = %v, want not-exist error naming %s", err, path)
	}
}

func TestApplyEmptyFile(t *testing.T) {
	for _, content := range []string{"", "# only a comment\n"} {
		fs := newFlags()
		if err := Apply(fs, writeFile(t, content), envOf(nil)); err != nil {
			t.Errorf("Apply(%q): %v", content, err)
		}
		if fs.Changed("addr") {
			t.Errorf("Apply(%q) changed addr", content)
		}
	}
}

// newCommand builds root + "serve" the way main does: persistent flags on the
// root, Bind in the root's PersistentPreRunE. got receives serve's view of its flags.
func newCommand(configDefault string, got map[string]string, env func(string) string) *cobra.Command {
	root := &cobra.Command{
		Use:           "steward",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return Bind(cmd, env)
		},
	}
	root.PersistentFlags().String("config", configDefault, "config file")
	root.PersistentFlags().String("data", "/var/lib/steward", "data directory")
	serve := &cobra.Command{
		Use: "serve",
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, name := range []string{"config", "data", "addr"} {
				v, err := cmd.Flags().GetString(name)
				if err != nil {
					return err
				}
				got[name] = v
			}
			help, err := cmd.Flags().GetBool("help")
			got["help"] = strconv.FormatBool(help)
			return err
		},
	}
	serve.Flags().String("addr", ":8080", "listen address")
	root.AddCommand(serve)
	root.SetOut(io.Discard)
	root.SetErr(io.Discard)
	return root
}

func TestBind(t *testing.T) {
	dir := t.TempDir()
	envFile := filepath.Join(dir, "env.yaml")
	flagFile := filepath.Join(dir, "flag.yaml")
	defaultFile := filepath.Join(dir, "default.yaml")
	for path, content := range map[string]string{
		envFile:     "addr: env-file:1\ndata: /env-file\n",
		flagFile:    "addr: flag-file:1\n",
		defaultFile: "addr: default-file:1\n",
	} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	helpFile := filepath.Join(dir, "help.yaml")
	if err := os.WriteFile(helpFile, []byte("help: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.yaml")

	tests := []struct {
		name          string
		configDefault string
		args          []string
		env           map[string]string
		want          map[string]string
		wantErr       string
	}{
		{
			name: "no config anywhere",
			args: []string{"serve"},
			want: map[string]string{"config": "", "data": "/var/lib/steward", "addr": ":8080"},
		},
		{
			name: "config path from STEWARD_CONFIG",
			args: []string{"serve"},
			env:  map[string]string{"STEWARD_CONFIG": envFile},
			want: map[string]string{"config": envFile, "data": "/env-file", "addr": "env-file:1"},
		},
		{
			name: "--config beats STEWARD_CONFIG",
			args: []string{"serve", "--config", flagFile},
			env:  map[string]string{"STEWARD_CONFIG": envFile},
			want: map[string]string{"config": flagFile, "data": "/var/lib/steward", "addr": "flag-file:1"},
		},
		{
			name: "inherited persistent flag from env",
			args: []string{"serve"},
			env:  map[string]string{"STEWARD_CONFIG": envFile, "STEWARD_DATA": "/env"},
			want: map[string]string{"config": envFile, "data": "/env", "addr": "env-file:1"},
		},
		{
			name: "inherited persistent flag from command line",
			args: []string{"--data", "/cli", "serve"},
			env:  map[string]string{"STEWARD_CONFIG": envFile, "STEWARD_DATA": "/env"},
			want: map[string]string{"config": envFile, "data": "/cli", "addr": "env-file:1"},
		},
		{
			name:          "default config file loaded when present",
			configDefault: defaultFile,
			args:          []string{"serve"},
			want:          map[string]string{"config": defaultFile, "data": "/var/lib/steward", "addr": "default-file:1"},
		},
		{
			name:          "default config file skipped when missing",
			configDefault: missing,
			args:          []string{"serve"},
			want:          map[string]string{"config": missing, "data": "/var/lib/steward", "addr": ":8080"},
		},
		{
			name:    "missing file from --config",
			args:    []string{"serve", "--config", missing},
			wantErr: "config file: open " + missing,
		},
		{
			name:    "missing file from STEWARD_CONFIG",
			args:    []string{"serve"},
			env:     map[string]string{"STEWARD_CONFIG": missing},
			wantErr: "config file: open " + missing,
		},
		{
			name: "cobra's help flag is not configurable",
			args: []string{"serve"},
			env:  map[string]string{"STEWARD_HELP": "true"},
			want: map[string]string{"help": "false", "addr": ":8080"},
		},
		{
			name:    "cobra's help flag is an unknown key",
			args:    []string{"serve"},
			env:     map[string]string{"STEWARD_CONFIG": helpFile},
			wantErr: "config file " + helpFile + `: unknown key "help"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := map[string]string{}
			root := newCommand(tt.configDefault, got, envOf(tt.env))
			root.SetArgs(tt.args)
			err := root.Execute()
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("Execute error = %v, want prefix %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Execute: %v", err)
			}
			for name, want := range tt.want {
				if got[name] != want {
					t.Errorf("%s = %q, want %q", name, got[name], want)
				}
			}
		})
	}
}

// TestBindWithoutConfigFlag covers commands that never declared --config.
func TestBindWithoutConfigFlag(t *testing.T) {
	path := writeFile(t, "addr: file:1\n")
	var addr string
	cmd := &cobra.Command{
		Use: "agent",
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return Bind(cmd, envOf(map[string]string{"STEWARD_CONFIG": path}))
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			addr, err = cmd.Flags().GetString("addr")
			return err
		},
	}
	cmd.Flags().String("addr", ":8080", "listen address")
	cmd.SetArgs(nil)
	cmd.SetOut(io.Discard)
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if addr != "file:1" {
		t.Errorf("addr = %q, want %q", addr, "file:1")
	}
}

// TestApplyDoesNotPrintValues guards the secrets rule: Apply itself writes nothing.
func TestApplyDoesNotPrintValues(t *testing.T) {
	fs := newFlags()
	var out bytes.Buffer
	fs.SetOutput(&out)
	path := writeFile(t, "tls-key-file: /secret/path\n")
	if err := Apply(fs, path, envOf(map[string]string{"STEWARD_BOOTSTRAP_ORG": "secret-org"})); err != nil {
		t.Fatal(err)
	}
	if out.Len() != 0 {
		t.Errorf("Apply wrote %q", out.String())
	}
}
