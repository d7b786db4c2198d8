package main

import (
	"fmt"
	"os"
	"slices"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"sigs.k8s.io/yaml"
)

// applyConfigFile sets cmd's flags from the YAML or JSON file at path, a
// map from flag names to values (`listen: 0.0.0.0:8443`, `store:
// postgres://...`). A flag given on the command line wins over the file.
// An unknown name, or a value the flag refuses, is an error naming it, and
// the command stops.
func applyConfigFile(cmd *cobra.Command, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading --config: %w", err)
	}
	var settings map[string]any
	if err := yaml.Unmarshal(b, &settings); err != nil {
		return fmt.Errorf("--config %s: not a YAML or JSON map of settings: %v", path, err)
	}

	// Every name is checked before any flag is set.
	names := make([]string, 0, len(settings))
	for name := range settings {
		f := cmd.Flags().Lookup(name)
		if f == nil || name == "config" {
			return fmt.Errorf("--config %s: unknown setting %q (settings are the flags of %q, without the dashes)",
				path, name, cmd.CommandPath())
		}
		names = append(names, name)
	}
	slices.Sort(names)

	values := map[*pflag.Flag]string{}
	for _, name := range names {
		f := cmd.Flags().Lookup(name)
		if f.Changed {
			continue
		}
		v, err := settingText(settings[name])
		if err != nil {
			return fmt.Errorf("--config %s: %s: %v", path, name, err)
		}
		values[f] = v
	}
	for _, name := range names {
		f := cmd.Flags().Lookup(name)
		v, ok := values[f]
		if !ok {
			continue
		}
		if err := f.Value.Set(v); err != nil {
			// The value is not echoed: a store URL may carry a password.
			return fmt.Errorf("--config %s: %s: not a valid %s", path, name, f.Value.Type())
		}
	}
	return nil
}

// settingText is a setting's value as a flag would take it.
func settingText(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case bool, float64:
		return fmt.Sprint(v), nil
	case nil:
		return "", nil
	default:
		return "", fmt.Errorf("want a string, number or boolean")
	}
}
