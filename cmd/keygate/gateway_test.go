package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/gateway/gwtest"
)

func writeGatewayConfig(t *testing.T, port int, backend *gwtest.Backend, extra string) string {
	t.Helper()
	doc := fmt.Sprintf(`
name: cli
admin: {address: "127.0.0.1:0"}
accessLog: {path: off}
frontendIPConfigurations: [{name: lo, privateIPAddress: 127.0.0.1}]
frontendPorts: [{name: http, port: %d}]
httpListeners: [{name: web, frontendPort: http, protocol: Http}]
backendAddressPools: [{name: app, backendAddresses: [{ipAddress: %s}]}]
backendHttpSettingsCollection: [{name: app, port: %d, protocol: Http}]
requestRoutingRules: [{name: web, ruleType: Basic, httpListener: web, backendAddressPool: app, backendHttpSettings: app}]
%s`, port, backend.IP, backend.Port, extra)
	path := filepath.Join(t.TempDir(), "gateway.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestGatewayValidate(t *testing.T) {
	be := gwtest.StartPool(t, "app", 1, nil)[0]
	good := writeGatewayConfig(t, gwtest.FreePort(t, "127.0.0.1"), be, "")
	out := mustRun(t, "gateway", "validate", "--config", good)
	if !strings.Contains(out, "valid: 1 listeners") || !strings.Contains(out, "TLS policy AppGwSslPolicy20220101") {
		t.Errorf("validate printed %q", out)
	}

	bad := writeGatewayConfig(t, 80, be, "probes: [{name: p, protocl: Http}]")
	_, err := run(t, "gateway", "validate", "--config", bad)
	if err == nil || !strings.Contains(err.Error(), "probes[0].protocl: unknown field") {
		t.Errorf("validate of a bad file: %v", err)
	}
}

// TestGatewayRunRefusesBadConfig checks that a gateway with an invalid
// file does not start: the command fails and its port stays free.
func TestGatewayRunRefusesBadConfig(t *testing.T) {
	be := gwtest.StartPool(t, "app", 1, nil)[0]
	port := gwtest.FreePort(t, "127.0.0.1")
	bad := writeGatewayConfig(t, port, be, "requestTimeout: 5")
	_, err := run(t, "gateway", "run", "--config", bad)
	if err == nil || !strings.Contains(err.Error(), "requestTimeout: unknown field") {
		t.Fatalf("run with a bad file: %v", err)
	}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatalf("the port of a refused configuration is taken: %v", err)
	}
	ln.Close()
}

// TestGatewayRun serves a request through `keygate gateway run` and stops
// it by cancelling its context, as SIGTERM does.
func TestGatewayRun(t *testing.T) {
	be := gwtest.StartPool(t, "app", 1, nil)[0]
	port := gwtest.FreePort(t, "127.0.0.1")
	path := writeGatewayConfig(t, port, be, "")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := rootCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs([]string{"gateway", "run", "--config", path, "--log-level", "error"})
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()

	body := waitServes(t, port, done, &out)
	if !strings.Contains(body, `"backend":"app1"`) || !strings.Contains(body, `"path":"/hello"`) {
		t.Fatalf("through the gateway: %q", body)
	}

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
