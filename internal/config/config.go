// Package config fills command flags from STEWARD_* environment variables and a YAML config file.
//
// Precedence, highest first: a flag given on the command line, its environment
// variable, its key in the config file, the flag's default. A flag filled from
// the environment or the file is marked Changed, as if it had been typed.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

// configFlag names the flag that holds the config file path. It is never read
// from the file itself: the file has already been chosen by then.
const configFlag = "config"

// EnvName returns the environment variable for a flag name, e.g.
// "bootstrap-org" → "STEWARD_BOOTSTRAP_ORG".
func EnvName(flag string) string {
	return "STEWARD_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// Apply sets every flag in fs that was not set on the command line from, in order: env var
// STEWARD_<FLAG NAME UPPERCASED, '-' → '_'> (e.g. --bootstrap-org → STEWARD_BOOTSTRAP_ORG),
// then the YAML file at path (keys are flag names, e.g. `addr: 127.0.0.1:9090`, `data: /var/lib/steward`;
// nested maps are NOT needed), if path != "". getenv is injected (os.Getenv in production) for tests.
//
// An empty environment variable counts as unset, since getenv cannot tell the two apart.
// Flags cobra adds for itself (--help, --version) are left alone: by the time
// Apply runs, cobra has already acted on them.
func Apply(fs *pflag.FlagSet, path string, getenv func(string) string) error {
	var file map[string]*yaml.Node
	if path != "" {
		var err error
		if file, err = readFile(fs, path); err != nil {
			return err
		}
	}
	// Keep going after a bad value so one run reports every mistake.
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || ownedByCobra(f) {
			return
		}
		env := EnvName(f.Name)
		if v := getenv(env); v != "" {
			if err := set(fs, f, v); err != nil {
				errs = append(errs, fmt.Errorf("env %s: %w", env, err))
			}
			return
		}
		if node, ok := file[f.Name]; ok {
			if err := setFromNode(fs, f, node); err != nil {
				errs = append(errs, fmt.Errorf("config file %s: key %s: %w", path, f.Name, err))
			}
		}
	})
	return errors.Join(errs...)
}

// Bind applies the environment and config file to cmd.Flags(), which by the
// time PersistentPreRunE runs includes the persistent flags inherited from parents.
// The file path comes from --config if given, else STEWARD_CONFIG, else the
// default of --config; a missing default file is skipped, a missing file
// named explicitly is an error.
func Bind(cmd *cobra.Command, getenv func(string) string) error {
	flags := cmd.Flags()
	f := flags.Lookup(configFlag)
	var path string
	explicit := true
	switch env := getenv(EnvName(configFlag)); {
	case f != nil && f.Changed:
		path = f.Value.String()
	case env != "":
		path = env
	case f != nil:
		path = f.Value.String()
		explicit = false
	}
	if !explicit && path != "" {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			path = ""
		}
	}
	return Apply(flags, path, getenv)
}

// readFile parses the config file and maps each key to its flag's name,
// rejecting keys that no flag in fs accepts.
func readFile(fs *pflag.FlagSet, path string) (map[string]*yaml.Node, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
		return nil, nil // empty or comments only
	} else if err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	// A second document would otherwise be ignored without a word.
	if err := dec.Decode(new(yaml.Node)); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("config file %s: only one YAML document is allowed", path)
	}
	root := resolve(doc.Content[0])
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("config file %s: top level must be a mapping of flag names to values", path)
	}

	file := make(map[string]*yaml.Node, len(root.Content)/2)
	var errs []error
	for i := 0; i+1 < len(root.Content); i += 2 {
		key, val := resolve(root.Content[i]), root.Content[i+1]
		if key.Kind != yaml.ScalarNode {
			errs = append(errs, fmt.Errorf("config file %s: line %d: key must be a flag name", path, key.Line))
			continue
		}
		name := key.Value
		f := fs.Lookup(name)
		switch {
		case name == configFlag:
			errs = append(errs, fmt.Errorf("config file %s: key %s: the config file path cannot be set from the config file", path, name))
		case f == nil || ownedByCobra(f):
			errs = append(errs, fmt.Errorf("config file %s: unknown key %q%s", path, name, hint(fs, name)))
		case file[f.Name] != nil:
			// Normalized names may make two spellings hit one flag.
			errs = append(errs, fmt.Errorf("config file %s: key %s: set more than once", path, name))
		default:
			file[f.Name] = val
		}
	}
	return file, errors.Join(errs...)
}

// setFromNode sets f from a YAML value. Scalars go through their source text,
// so `port: 0x1f90` or `ratio: 1e3` reach the flag exactly as written.
func setFromNode(fs *pflag.FlagSet, f *pflag.Flag, node *yaml.Node) error {
	node = resolve(node)
	switch node.Kind {
	case yaml.ScalarNode:
		s, err := scalar(node)
		if err != nil {
			return err
		}
		return set(fs, f, s)
	case yaml.SequenceNode:
		sv, ok := f.Value.(pflag.SliceValue)
		if !ok {
			return fmt.Errorf("a list is not valid for --%s (type %s)", f.Name, f.Value.Type())
		}
		items := make([]string, 0, len(node.Content))
		for _, item := range node.Content {
			item = resolve(item)
			if item.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: list items must be plain values", item.Line)
			}
			s, err := scalar(item)
			if err != nil {
				return err
			}
			items = append(items, s)
		}
		// Replace keeps each item whole; fs.Set would split "a,b" in two.
		if err := sv.Replace(items); err != nil {
			return fmt.Errorf("invalid list for --%s: %w", f.Name, err)
		}
		// Replace bypasses fs.Set, so mark the flag as fs.Set would.
		f.Changed = true
		return nil
	default:
		return fmt.Errorf("nested maps are not supported for --%s", f.Name)
	}
}

func scalar(node *yaml.Node) (string, error) {
	// A bare `key:` is more likely an unfinished edit than a wish for "".
	if node.Tag == "!!null" {
		return "", fmt.Errorf("line %d: no value (write \"\" for an empty string)", node.Line)
	}
	return node.Value, nil
}

// set wraps fs.Set so the error names the flag once, without pflag's own prefix.
func set(fs *pflag.FlagSet, f *pflag.Flag, value string) error {
	if err := fs.Set(f.Name, value); err != nil {
		if ive := (*pflag.InvalidValueError)(nil); errors.As(err, &ive) {
			err = ive.Unwrap()
		}
		return fmt.Errorf("invalid value %q for --%s: %w", value, f.Name, err)
	}
	return nil
}

func resolve(node *yaml.Node) *yaml.Node {
	for node.Kind == yaml.AliasNode {
		node = node.Alias
	}
	return node
}

func ownedByCobra(f *pflag.Flag) bool {
	return len(f.Annotations[cobra.FlagSetByCobraAnnotation]) > 0
}

// hint suggests the flag names nearest to an unknown key, allowing one edit
// for short keys and two otherwise, so "adr" finds "addr" but not "ids".
func hint(fs *pflag.FlagSet, key string) string {
	best := 1
	if len(key) >= 4 {
		best = 2
	}
	var near []string
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Name == configFlag || ownedByCobra(f) {
			return
		}
		switch d := distance(key, f.Name); {
		case d < best:
			best, near = d, []string{f.Name}
		case d == best:
			near = append(near, f.Name)
		}
	})
	if len(near) == 0 {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", strings.Join(near, ", "))
}

// distance is the Levenshtein distance between a and b, counted in bytes;
// flag names are ASCII.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
