package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/gateway/gwtest"
)

// reloadDoc is a gateway with a plain HTTP listener on each of ports and
// its admin listener on admin.
func reloadDoc(admin string, be *gwtest.Backend, ports ...int) string {
	var fp, ls, rs strings.Builder
	for _, p := range ports {
		fmt.Fprintf(&fp, "  - {name: p%d, port: %d}\n", p, p)
		fmt.Fprintf(&ls, "  - {name: l%d, frontendPort: p%d, protocol: Http}\n", p, p)
		fmt.Fprintf(&rs, "  - {name: r%d, ruleType: Basic, httpListener: l%d, backendAddressPool: app, backendHttpSettings: app}\n", p, p)
	}
	return fmt.Sprintf(`
name: cli
admin: {address: "%s"}
accessLog: {path: off}
frontendIPConfigurations: [{name: lo, privateIPAddress: 127.0.0.1}]
frontendPorts:
%shttpListeners:
%sbackendAddressPools: [{name: app, backendAddresses: [{ipAddress: %s}]}]
backendHttpSettingsCollection: [{name: app, port: %d, protocol: Http}]
requestRoutingRules:
%s`, admin, fp.String(), ls.String(), be.IP, be.Port, rs.String())
}

// waitServes waits until port answers through the gateway from the
// backend, and returns the answer.
func waitServes(t *testing.T, port int, done <-chan error, out *bytes.Buffer) string {
	t.Helper()
	url := fmt.Sprintf("http://127.0.0.1:%d/hello", port)
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-done:
			t.Fatalf("run ended early: %v\n%s", err, out.String())
		default:
		}
		resp, err := http.Get(url)
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), `"backend":"app1"`) {
			return string(b)
		}
	}
	t.Fatalf("port %d never served", port)
	return ""
}

// TestGatewayReload runs `keygate gateway run`, changes its file and
// sends the process SIGHUP, then changes it again and runs `keygate
// gateway reload`: each reload serves the new port. A bad file makes
// `gateway reload` fail and print the problem.
func TestGatewayReload(t *testing.T) {
	be := gwtest.StartPool(t, "app", 1, nil)[0]
	a, b, c := gwtest.FreePort(t, "127.0.0.1"), gwtest.FreePort(t, "127.0.0.1"), gwtest.FreePort(t, "127.0.0.1")
	admin := fmt.Sprintf("127.0.0.1:%d", gwtest.FreePort(t, "127.0.0.1"))
	path := filepath.Join(t.TempDir(), "gateway.yaml")
	write := func(doc string) {
		if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(reloadDoc(admin, be, a))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := rootCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs([]string{"gateway", "run", "--config", path, "--log-level", "error"})
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	waitServes(t, a, done, &out)

	// SIGHUP, to this process, which runs the command.
	write(reloadDoc(admin, be, a, b))
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitServes(t, b, done, &out)

	write(reloadDoc(admin, be, a, b, c))
	got := mustRun(t, "gateway", "reload", "--admin", admin)
	if !strings.Contains(got, "configuration reloaded: generation 3") ||
		!strings.Contains(got, fmt.Sprintf("listeners added: l%d", c)) || !strings.Contains(got, "listeners unchanged: 2") {
		t.Errorf("gateway reload printed %q", got)
	}
	waitServes(t, c, done, &out)

	write(reloadDoc(admin, be, a) + "probes: [{name: p, protocl: Http}]\n")
	got, err := run(t, "gateway", "reload", "--admin", admin)
	if err == nil || !strings.Contains(err.Error(), "configuration not reloaded") ||
		!strings.Contains(got, "probes[0].protocl: unknown field") {
		t.Errorf("gateway reload of a bad file: %v\n%s", err, got)
	}
	waitServes(t, c, done, &out)

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not stop after its context ended")
	}
}
