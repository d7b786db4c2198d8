package push_test

import (
	"bufio"
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/keygate/keygate/internal/gateway/gwtest"
	"github.com/keygate/keygate/internal/gateway/push"
	"github.com/keygate/keygate/internal/vaulttest"
)

// recorder collects what a Subscriber reports.
type recorder struct {
	events  chan push.Event
	resyncs atomic.Int32
	denials atomic.Int32
}

func newRecorder() *recorder { return &recorder{events: make(chan push.Event, 100)} }

// subscriber makes a Subscriber of v reporting to r, authenticating with
// cred (the administrator's when nil), with short backoff.
func subscriber(t *testing.T, v *vaulttest.Vault, r *recorder, cred azcore.TokenCredential) *push.Subscriber {
	t.Helper()
	if cred == nil {
		var err error
		if cred, err = v.Admin.Credential(v.HTTP); err != nil {
			t.Fatal(err)
		}
	}
	return push.New(push.Config{
		VaultURL: v.URL, Credential: cred, HTTPClient: v.HTTP, VerifyChallenge: true,
		OnEvent:    func(e push.Event) { r.events <- e },
		OnResync:   func() { r.resyncs.Add(1) },
		OnDenied:   func(error) { r.denials.Add(1) },
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond,
	})
}

// run runs s until the returned function is called or the test ends.
func run(t *testing.T, s *push.Subscriber) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	stop = sync.OnceFunc(func() {
		cancel()
		<-done
	})
	t.Cleanup(stop)
	return stop
}

// next returns the next event about name, failing after 20 seconds.
func (r *recorder) next(t *testing.T, name string) push.Event {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case e := <-r.events:
			if e.Name == name {
				return e
			}
		case <-timeout:
			t.Fatalf("no event about %s within 20s", name)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
	}
}

func setSecret(t *testing.T, v *vaulttest.Vault, name string) string {
	t.Helper()
	return v.SetSecret(name, "value of "+name, "")
}

// TestSubscriberFollowsVault follows a vault's events: the first
// connection asks for a resync, and each change arrives with its type,
// kind, name and version, in order.
func TestSubscriberFollowsVault(t *testing.T) {
	v := vaulttest.Start(t, nil)
	r := newRecorder()
	s := subscriber(t, v, r, nil)
	run(t, s)
	waitFor(t, "the stream to open", func() bool { return s.State().Connected })
	if r.resyncs.Load() != 1 {
		t.Errorf("%d resyncs after the first connection, want 1", r.resyncs.Load())
	}

	ver := setSecret(t, v, "site")
	e := r.next(t, "site")
	if e.Type != "new_version" || e.Kind != "secret" || e.Version != ver || e.Sequence == 0 {
		t.Errorf("event of a new version: %+v", e)
	}
	if _, err := v.Secrets.UpdateSecretProperties(context.Background(), "site", ver, azsecrets.UpdateSecretPropertiesParameters{
		SecretAttributes: &azsecrets.SecretAttributes{Enabled: to.Ptr(false)}}, nil); err != nil {
		t.Fatal(err)
	}
	if e2 := r.next(t, "site"); e2.Type != "updated" || e2.Sequence <= e.Sequence {
		t.Errorf("event of a disabled version: %+v after %d", e2, e.Sequence)
	}
	if _, err := v.Secrets.DeleteSecret(context.Background(), "site", nil); err != nil {
		t.Fatal(err)
	}
	if e3 := r.next(t, "site"); e3.Type != "deleted" {
		t.Errorf("event of a deletion: %+v", e3)
	}

	// A certificate's new version is also its secret's.
	ca := gwtest.NewCA(t, "CA")
	pem := ca.Issue(t, gwtest.ECDSA, "cert.example.test").PEM(t)
	imported, err := v.Certificates.ImportCertificate(context.Background(), "cert", azcertificates.ImportCertificateParameters{
		Base64EncodedCertificate: to.Ptr(pem)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]string{}
	for range 2 {
		e := r.next(t, "cert")
		kinds[e.Kind] = e.Version
	}
	want := imported.ID.Version()
	if kinds["certificate"] != want || kinds["secret"] != want {
		t.Errorf("events of an imported certificate: %v, want certificate and secret of version %s", kinds, want)
	}
	if st := s.State(); !st.Connected || st.LastEvent == 0 || st.LastError != "" {
		t.Errorf("state: %+v", st)
	}
}

// TestSubscriberResumes loses no event across a subscriber that stops and
// runs again, and across a vault restart: it resumes after the last
// event it saw, without a resync.
func TestSubscriberResumes(t *testing.T) {
	v := vaulttest.Start(t, nil)
	r := newRecorder()
	s := subscriber(t, v, r, nil)
	stop := run(t, s)
	waitFor(t, "the stream to open", func() bool { return s.State().Connected })
	setSecret(t, v, "a")
	first := r.next(t, "a")

	// Events recorded while no one listens arrive on the next run.
	stop()
	missed := []string{setSecret(t, v, "b"), setSecret(t, v, "b")}
	run(t, s)
	for i, want := range missed {
		if e := r.next(t, "b"); e.Version != want || e.Sequence <= first.Sequence {
			t.Errorf("replayed event %d: %+v, want version %s after %d", i, e, want, first.Sequence)
		}
	}

	// The vault restarts: the stream drops and comes back where it was.
	v.Stop()
	waitFor(t, "the stream to drop", func() bool { return !s.State().Connected })
	v.Restart()
	waitFor(t, "the stream to reopen", func() bool { return s.State().Connected })
	after := setSecret(t, v, "c")
	if e := r.next(t, "c"); e.Version != after {
		t.Errorf("event after the restart: %+v, want version %s", e, after)
	}
	if n := r.resyncs.Load(); n != 1 {
		t.Errorf("%d resyncs, want only the first connection's", n)
	}
	select {
	case e := <-r.events:
		t.Errorf("an event twice, or one not asked for: %+v", e)
	default:
	}
}

// TestSubscriberResetWhenEventsAreGone resumes after events the vault no
// longer keeps: the vault says reset, and the subscriber asks for a
// resync, then follows as before.
func TestSubscriberResetWhenEventsAreGone(t *testing.T) {
	clock := vaulttest.NewClock()
	v := vaulttest.StartWith(t, vaulttest.Options{Clock: clock, PurgeInterval: 20 * time.Millisecond,
		TokenLifetime: 30 * 24 * time.Hour})
	r := newRecorder()
	s := subscriber(t, v, r, nil)
	stop := run(t, s)
	waitFor(t, "the stream to open", func() bool { return s.State().Connected })
	setSecret(t, v, "a")
	seen := r.next(t, "a")
	stop()

	// Past the events' retention, the vault prunes what came after.
	setSecret(t, v, "b")
	clock.Advance(8 * 24 * time.Hour)
	waitFor(t, "the vault to prune its events", func() bool { return firstEvent(t, v, seen.Sequence) == "reset" })

	run(t, s)
	waitFor(t, "a resync", func() bool { return r.resyncs.Load() == 2 })
	ver := setSecret(t, v, "c")
	if e := r.next(t, "c"); e.Version != ver {
		t.Errorf("event after the reset: %+v", e)
	}
	select {
	case e := <-r.events:
		t.Errorf("a pruned event was delivered: %+v", e)
	default:
	}
}

// firstEvent opens the stream after id as the administrator and returns
// the name of the first event.
func firstEvent(t *testing.T, v *vaulttest.Vault, id uint64) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tok, err := v.Admin.Token(ctx, v.HTTP, v.Resource()+"/.default")
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", v.URL+push.Path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Last-Event-ID", strconv.FormatUint(id, 10))
	resp, err := v.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if name, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
			return name
		}
	}
	return ""
}

// TestSubscriberDenied revokes the subscriber's access: the vault ends
// the stream and refuses it, which the subscriber reports; with access
// back, the stream reopens and asks for a resync, since access changes
// record no event.
func TestSubscriberDenied(t *testing.T) {
	v := vaulttest.Start(t, nil)
	id := v.StartIdentity("gateway", "web-1", map[string][]string{"secrets": {"get"}})
	vaulttest.UseAgent(t, id.Agent)
	cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
		ClientOptions: azcore.ClientOptions{Transport: v.HTTP}, ID: azidentity.ClientID(id.ClientID)})
	if err != nil {
		t.Fatal(err)
	}
	r := newRecorder()
	s := subscriber(t, v, r, cred)
	run(t, s)
	waitFor(t, "the stream to open", func() bool { return s.State().Connected })

	v.SetAccess("default", "remove", id.PrincipalID, nil)
	waitFor(t, "the refusal to be reported", func() bool { return r.denials.Load() > 0 })
	if st := s.State(); st.Connected || !strings.Contains(st.LastError, "403") {
		t.Errorf("state while refused: %+v", st)
	}

	v.SetAccess("default", "add", id.PrincipalID, map[string][]string{"secrets": {"get"}})
	waitFor(t, "the stream to reopen", func() bool { return s.State().Connected })
	waitFor(t, "a resync after the refusal", func() bool { return r.resyncs.Load() == 2 })
}

// TestSubscriberVerifiesChallenge refuses to fetch a token for a resource
// the vault's host is not under.
func TestSubscriberVerifiesChallenge(t *testing.T) {
	v := vaulttest.Start(t, nil)
	cred, err := v.Admin.Credential(v.HTTP)
	if err != nil {
		t.Fatal(err)
	}
	// The same vault by another name: its challenge names 127.0.0.1.
	other := strings.Replace(v.URL, "127.0.0.1", "localhost", 1)
	s := push.New(push.Config{VaultURL: other, Credential: cred, HTTPClient: v.LoopbackClient(),
		VerifyChallenge: true, MinBackoff: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	waitFor(t, "a failed attempt", func() bool { return s.State().LastError != "" })
	cancel()
	<-done
	if st := s.State(); st.Connected || !strings.Contains(st.LastError, "not under") {
		t.Errorf("state: %+v, want a refusal of the challenge", st)
	}
}

// TestSubscriberIdleTimeout ends a connection on which nothing arrives for
// longer than IdleTimeout (here shorter than the vault's heartbeat), and
// opens another, resuming where it was.
func TestSubscriberIdleTimeout(t *testing.T) {
	v := vaulttest.Start(t, nil)
	cred, err := v.Admin.Credential(v.HTTP)
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	r := newRecorder()
	s := push.New(push.Config{
		VaultURL: v.URL, Credential: cred, HTTPClient: v.HTTP,
		OnEvent: func(e push.Event) { r.events <- e }, OnResync: func() { r.resyncs.Add(1) },
		Logger:      slog.New(slog.NewTextHandler(&logs, nil)),
		IdleTimeout: 300 * time.Millisecond, MinBackoff: 10 * time.Millisecond,
	})
	run(t, s)
	waitFor(t, "two connections cut for idleness", func() bool {
		return strings.Count(logs.String(), "vault event stream up") >= 3
	})
	if !strings.Contains(logs.String(), "vault event stream down") {
		t.Errorf("no connection was ended:\n%s", logs.String())
	}
	ver := setSecret(t, v, "x")
	if e := r.next(t, "x"); e.Version != ver {
		t.Errorf("event after reconnections: %+v", e)
	}
	if r.resyncs.Load() != 1 {
		t.Errorf("%d resyncs, want 1: a reconnection resumes", r.resyncs.Load())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestSubscriberWaitsAsTold meets a vault over its stream limit: the
// subscriber reports the 429 and waits the Retry-After the vault asked
// for (capped by MaxBackoff) before it tries again, rather than its
// usual short backoff.
func TestSubscriberWaitsAsTold(t *testing.T) {
	v := vaulttest.StartWith(t, vaulttest.Options{MaxCallerEventStreams: 1})
	first := subscriber(t, v, newRecorder(), nil)
	run(t, first)
	waitFor(t, "the first stream to open", func() bool { return first.State().Connected })

	cred, err := v.Admin.Credential(v.HTTP)
	if err != nil {
		t.Fatal(err)
	}
	second := push.New(push.Config{
		VaultURL: v.URL, Credential: cred, HTTPClient: v.HTTP, VerifyChallenge: true,
		OnEvent: func(push.Event) {}, OnResync: func() {},
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 10 * time.Minute,
	})
	run(t, second)
	waitFor(t, "the second stream to be throttled", func() bool {
		return strings.Contains(second.State().LastError, "429") && !second.State().RetryAt.IsZero()
	})
	if wait := time.Until(second.State().RetryAt); wait < 20*time.Second {
		t.Errorf("retrying in %s after a 429 with Retry-After: 30, want about 30s", wait)
	}
}
