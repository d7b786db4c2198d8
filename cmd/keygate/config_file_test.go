package main

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/gateway/gwtest"
)

// settingsFile writes text to a vault.yaml of its own.
func settingsFile(t *testing.T, text string) string {
	t.Helper()
	return writeFile(t, t.TempDir(), "vault.yaml", []byte(text))
}

// TestVaultServeConfigFile serves a vault from a settings file: it
// listens where the file says, unless a flag says otherwise.
func TestVaultServeConfigFile(t *testing.T) {
	for _, tc := range []struct {
		name     string
		flagPort bool
	}{{"from the file", false}, {"a flag wins", true}} {
		t.Run(tc.name, func(t *testing.T) {
			filePort, flagPort := gwtest.FreePort(t, "127.0.0.1"), gwtest.FreePort(t, "127.0.0.1")
			cfg := settingsFile(t, fmt.Sprintf("data: %s\nlisten: 127.0.0.1:%d\nlog-level: error\nsigning-key-rotation: 720h\n",
				filepath.Join(t.TempDir(), "data"), filePort))
			args := []string{"vault", "serve", "--config", cfg}
			want := filePort
			if tc.flagPort {
				args = append(args, "--listen", fmt.Sprintf("127.0.0.1:%d", flagPort))
				want = flagPort
			}

			ctx, cancel := context.WithCancel(context.Background())
			cmd := rootCommand()
			cmd.SetOut(&syncBuffer{})
			cmd.SetErr(&syncBuffer{})
			cmd.SetArgs(args)
			done := make(chan error, 1)
			go func() { done <- cmd.ExecuteContext(ctx) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("serve: %v", err)
				}
			}()
			for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", want)); err == nil {
					c.Close()
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("nothing listens on port %d", want)
				}
			}
		})
	}
}

// TestVaultServeConfigFileRefused refuses files with unknown settings or
// values their flag does not take, naming the setting and never echoing
// a value.
func TestVaultServeConfigFileRefused(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	for _, tc := range []struct{ name, text, want string }{
		{"unknown setting", "data: " + data + "\nlisen: 127.0.0.1:1\n", `unknown setting "lisen"`},
		{"bad duration", "data: " + data + "\nsigning-key-rotation: soon\n", "signing-key-rotation: not a valid duration"},
		{"not a map", "- listen\n", "not a YAML or JSON map"},
		{"nested value", "data: " + data + "\nlisten: {host: x}\n", "listen: want a string"},
		{"store applied, password hidden", "data: " + data + "\nlisten: 127.0.0.1:0\nstore: postgres://u:sekrit-pw@127.0.0.1:1/db\n", "127.0.0.1:1/db"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := run(t, "vault", "serve", "--config", settingsFile(t, tc.text))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("serve with %q: %v, want an error saying %q\n%s", tc.text, err, tc.want, out)
			}
			if strings.Contains(err.Error()+out, "sekrit-pw") {
				t.Errorf("the store's password reached the error or output")
			}
		})
	}
}

// TestAuditRequiredNeedsALog refuses --audit-required without an audit
// log to require, on the vault and on the agent.
func TestAuditRequiredNeedsALog(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	for _, args := range [][]string{
		{"vault", "serve", "--data", data, "--listen", "127.0.0.1:0", "--audit-required"},
		{"identity", "agent", "--authority", "https://127.0.0.1:1/t", "--host", "h", "--credential-file", "/nonexistent", "--audit-required"},
	} {
		_, err := run(t, args...)
		if err == nil || !strings.Contains(err.Error(), "--audit-required needs --audit-log") {
			t.Errorf("%v: %v, want the flag named", args[:2], err)
		}
	}
}
