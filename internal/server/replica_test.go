package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/keygate/keygate/internal/client"
	"github.com/keygate/keygate/internal/manage"
	"github.com/keygate/keygate/internal/server"
)

// replicaURL is the public URL both replicas of a test are given, as if a
// load balancer answered there. Nothing listens on it: clients are pinned
// to one replica's address by their dialer, as a host file would.
const replicaURL = "https://127.0.0.1:4443"

// replica is one vault process of several on a database, and the clients
// pinned to it.
type replica struct {
	addr    string
	http    *http.Client
	secrets *azsecrets.Client
}

// pin returns a replica whose clients reach addr whatever host the URL
// names, authenticating with creds against that replica's authority.
func pin(t *testing.T, creds client.Credentials, addr string) *replica {
	t.Helper()
	hc, err := client.Transport(creds.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	tr := hc.Transport.(*http.Transport)
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	cred, err := creds.Credential(hc)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := azsecrets.NewClient(replicaURL, cred, &azsecrets.ClientOptions{
		ClientOptions:                        azcore.ClientOptions{Transport: hc},
		DisableChallengeResourceVerification: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &replica{addr: addr, http: hc, secrets: sc}
}

// setPolicy applies op (add, remove) to objectID's secrets get grant on
// the default vault through this replica's management API.
func (rp *replica) setPolicy(t *testing.T, admin client.Credentials, op, objectID string) {
	t.Helper()
	body := map[string]any{"properties": map[string]any{"accessPolicies": []any{map[string]any{
		"tenantId": admin.TenantID, "objectId": objectID, "permissions": map[string]any{"secrets": []string{"get"}},
	}}}}
	rp.manage(t, admin, http.MethodPut, "/management/vaults/default/accessPolicies/"+op, body, nil)
}

// manage calls this replica's management API as admin, failing the test
// unless it succeeds, and decodes the answer into out when not nil.
func (rp *replica) manage(t *testing.T, admin client.Credentials, method, path string, body, out any) {
	t.Helper()
	tok, err := admin.Token(ctxT(t), rp.http, manage.Audience+"/.default")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, replicaURL+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := rp.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %d", method, path, resp.StatusCode)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
}

// events subscribes to this replica's event stream of the default vault.
func (rp *replica) events(t *testing.T, token string) *eventStream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, replicaURL+"/keygate/events?api-version=7.5", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := rp.http.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		cancel()
		t.Fatalf("opening the event stream: %v %v", resp, err)
	}
	return newEventStream(t, resp, cancel)
}

// status GETs path (with api-version) from this replica with token and
// returns the status.
func (rp *replica) status(t *testing.T, token, path string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, replicaURL+path+"?api-version=7.5", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := rp.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// tokenKID returns the kid in a JWT's header.
func tokenKID(t *testing.T, token string) string {
	t.Helper()
	head, _, _ := strings.Cut(token, ".")
	b, err := base64.RawURLEncoding.DecodeString(head)
	var h struct{ KID string }
	if err != nil || json.Unmarshal(b, &h) != nil {
		t.Fatalf("token header is not base64url JSON")
	}
	return h.KID
}

// startReplicaProcess starts a vault process on the database at storeURL
// with the given master key and replicaURL as its public URL, and returns
// it with its listening address. The test kills it at the end at the
// latest.
func startReplicaProcess(t *testing.T, storeURL, masterKey string) (*exec.Cmd, string) {
	t.Helper()
	root := t.TempDir()
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), childDirEnv+"="+filepath.Join(root, "data"),
		childStoreEnv+"="+storeURL, childURLEnv+"="+replicaURL, server.MasterKeyEnv+"="+masterKey)
	var stderr bytes.Buffer
	child.Stderr = &stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { child.Process.Kill(); child.Wait() })
	return child, waitForFile(t, filepath.Join(root, "addr"), &stderr)
}

// TestReplicasShareOneDatabase runs two vault replicas, one in this
// process and one in another, on one PostgreSQL database behind one public
// URL. A write on either is read on the other, a token either issues is
// good at both, and a replica killed during a stream of writes loses none
// that it acknowledged.
func TestReplicasShareOneDatabase(t *testing.T) {
	requirePostgres(t)
	dir := filepath.Join(t.TempDir(), "data")
	b := startVaultNoConnect(t, dir, func(c *server.Config) { c.PublicURL = replicaURL })
	creds, err := client.Load(b.srv.AdminFile())
	if err != nil {
		t.Fatal(err)
	}
	if creds.VaultURL != replicaURL {
		t.Errorf("admin.json vaultUrl = %q, want the public URL %q", creds.VaultURL, replicaURL)
	}
	key := strings.TrimSpace(string(mustReadFile(t, filepath.Join(dir, "master.key"))))
	child, addrA := startReplicaProcess(t, testStoreURL(t, dir), key)
	repA, repB := pin(t, creds, addrA), pin(t, creds, b.srv.Addr())

	t.Run("write on one, read on the other", func(t *testing.T) {
		for i, pair := range [][2]*replica{{repA, repB}, {repB, repA}} {
			name, value := fmt.Sprint("crossed-", i), fmt.Sprint("value-", i)
			if _, err := pair[0].secrets.SetSecret(ctxT(t), name, azsecrets.SetSecretParameters{Value: &value}, nil); err != nil {
				t.Fatal(err)
			}
			got, err := pair[1].secrets.GetSecret(ctxT(t), name, "", nil)
			if err != nil || *got.Value != value {
				t.Errorf("read on the other replica: %v, %v; want %q", got.Value, err, value)
			}
		}
	})

	t.Run("a token from one is good at the other", func(t *testing.T) {
		tok, err := creds.Token(ctxT(t), repA.http, b.srv.Resource()+"/.default")
		if err != nil {
			t.Fatal(err)
		}
		if got := repB.status(t, tok, "/secrets/crossed-0/"); got != http.StatusOK {
			t.Errorf("token issued by replica A, used at replica B: %d, want 200", got)
		}
	})

	t.Run("a policy changed on one is applied by the other", func(t *testing.T) {
		sp, secret, err := b.srv.Authority().CreateServicePrincipal(ctxT(t), "replica-reader", nil)
		if err != nil {
			t.Fatal(err)
		}
		reader := creds
		reader.ClientID, reader.ClientSecret = sp.ClientID, secret
		readerB := pin(t, reader, b.srv.Addr())
		status := func() int {
			_, err := readerB.secrets.GetSecret(ctxT(t), "crossed-0", "", nil)
			if err == nil {
				return http.StatusOK
			}
			return statusOf(err)
		}
		if got := status(); got != http.StatusForbidden { // and B caches the vault's policies
			t.Fatalf("before the grant: %d, want 403", got)
		}
		for _, step := range []struct {
			op   string
			want int
		}{{"add", http.StatusOK}, {"remove", http.StatusForbidden}} {
			repA.setPolicy(t, creds, step.op, sp.ObjectID)
			waitFor(t, func() bool { return status() == step.want })
		}
	})

	t.Run("an event recorded on one reaches a subscriber of the other", func(t *testing.T) {
		tok, err := creds.Token(ctxT(t), repB.http, b.srv.Resource()+"/.default")
		if err != nil {
			t.Fatal(err)
		}
		stream := repB.events(t, tok)
		if e := stream.next(); e.event != "ready" {
			t.Fatalf("first event %q, want ready", e.event)
		}
		set, err := repA.secrets.SetSecret(ctxT(t), "pushed", azsecrets.SetSecretParameters{Value: to.Ptr("v")}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if e := stream.nextOf("secret", "pushed"); e.data["version"] != set.ID.Version() {
			t.Errorf("event for %v, want version %s", e.data, set.ID.Version())
		}
	})

	t.Run("a signing key rotated on one signs and verifies on both", func(t *testing.T) {
		var rotated struct{ KID string }
		repA.manage(t, creds, http.MethodPost, "/management/signingKeys/rotate",
			map[string]any{"activationDelaySeconds": 0}, &rotated)
		tok, err := creds.Token(ctxT(t), repA.http, b.srv.Resource()+"/.default")
		if err != nil {
			t.Fatal(err)
		}
		if kid := tokenKID(t, tok); kid != rotated.KID {
			t.Fatalf("replica A signs with %s after rotating to %s", kid, rotated.KID)
		}
		waitFor(t, func() bool { return repB.status(t, tok, "/secrets/crossed-0/") == http.StatusOK })
	})

	t.Run("killed replica loses no acknowledged write", func(t *testing.T) {
		acked := writeUntilKilled(t, repA.secrets, child)
		t.Logf("%d writes acknowledged before the kill", len(acked))
		for key, want := range acked {
			name, version, _ := strings.Cut(key, "/")
			got, err := repB.secrets.GetSecret(ctxT(t), name, version, nil)
			if err != nil {
				t.Errorf("acknowledged write %s lost: %v", key, err)
			} else if *got.Value != want {
				t.Errorf("%s = %q, want %q", key, *got.Value, want)
			}
		}
	})
}

// writeUntilKilled sets secrets through c from several writers, kills
// child with SIGKILL once 100 writes are acknowledged, and returns every
// acknowledged write as "name/version" -> value.
func writeUntilKilled(t *testing.T, c *azsecrets.Client, child *exec.Cmd) map[string]string {
	t.Helper()
	var (
		mu    sync.Mutex
		acked = map[string]string{}
		wg    sync.WaitGroup
	)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil && i < 400; i++ {
				name, value := fmt.Sprintf("k%d-%d", w, i), fmt.Sprintf("value-%d-%d", w, i)
				r, err := c.SetSecret(ctx, name, azsecrets.SetSecretParameters{Value: &value}, nil)
				if err != nil {
					return
				}
				mu.Lock()
				acked[name+"/"+r.ID.Version()] = value
				mu.Unlock()
			}
		})
	}
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) >= 100 })
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	child.Wait()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	return acked
}

// TestPublicURLMustBeAnHTTPSOrigin refuses, at start, public URLs the
// SDKs could not use, naming what is wrong.
func TestPublicURLMustBeAnHTTPSOrigin(t *testing.T) {
	cases := []struct{ url, want string }{
		{"http://kv.example.internal", "must be https"},
		{"https://kv.example.internal/vault", "must be an origin"},
		{"https://kv.example.internal/?x=1", "must be an origin"},
		{"https:///nohost", "has no host"},
		{"https://kv example", "not a URL"},
	}
	for _, tc := range cases {
		t.Run(tc.url, func(t *testing.T) {
			wantStartRefused(t, server.Config{
				DataDir: filepath.Join(t.TempDir(), "data"), Listen: "127.0.0.1:0", PublicURL: tc.url,
			}, tc.want)
		})
	}
}
