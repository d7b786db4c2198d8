package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/keygate/keygate/internal/pki"
	"github.com/keygate/keygate/internal/server"
)

// sse is one server-sent event as a subscriber reads it.
type sse struct {
	event string
	id    uint64
	data  map[string]any
}

// eventStream is an open GET /keygate/events, read event by event.
type eventStream struct {
	t      *testing.T
	resp   *http.Response
	events chan sse
	cancel func()
}

// openEvents subscribes to the default vault's events with token,
// starting after lastID when it is not empty. It returns the response
// status and, for 200, the stream.
func (tv *testVault) openEvents(t *testing.T, token, lastID string) (int, *eventStream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, tv.srv.URL()+"/keygate/events?api-version=7.5", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := tv.http.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		return resp.StatusCode, nil
	}
	return resp.StatusCode, newEventStream(t, resp, cancel)
}

// newEventStream reads the events of resp until the test ends; cancel
// ends its request.
func newEventStream(t *testing.T, resp *http.Response, cancel func()) *eventStream {
	s := &eventStream{t: t, resp: resp, events: make(chan sse, 100), cancel: cancel}
	go s.read()
	t.Cleanup(s.close)
	return s
}

func (s *eventStream) read() {
	defer close(s.events)
	sc := bufio.NewScanner(s.resp.Body)
	var cur sse
	for sc.Scan() {
		field, value, _ := strings.Cut(sc.Text(), ": ")
		switch field {
		case "event":
			cur.event = value
		case "id":
			cur.id, _ = strconv.ParseUint(value, 10, 64)
		case "data":
			json.Unmarshal([]byte(value), &cur.data)
		case "":
			if cur.event != "" {
				s.events <- cur
			}
			cur = sse{}
		}
	}
}

func (s *eventStream) close() {
	s.cancel()
	s.resp.Body.Close()
}

// next returns the next event, failing the test after 10 seconds.
func (s *eventStream) next() sse {
	s.t.Helper()
	select {
	case e, ok := <-s.events:
		if !ok {
			s.t.Fatal("event stream ended")
		}
		return e
	case <-time.After(10 * time.Second):
		s.t.Fatal("no event within 10s")
	}
	return sse{}
}

// nextOf skips events until one of the given kind and name arrives.
func (s *eventStream) nextOf(kind, name string) sse {
	s.t.Helper()
	for {
		if e := s.next(); e.data["kind"] == kind && e.data["name"] == name {
			return e
		}
	}
}

// TestEventStream subscribes to a vault's events: a change is delivered at
// once with its id and version, a reconnect with Last-Event-ID replays
// what came after it, and a reader sees only the kinds it may get.
func TestEventStream(t *testing.T) {
	tv := startVault(t, "")
	status, s := tv.openEvents(t, tv.adminToken(), "")
	if status != http.StatusOK {
		t.Fatalf("open stream: %d", status)
	}
	ready := s.next()
	if ready.event != "ready" {
		t.Fatalf("first event %q, want ready", ready.event)
	}

	// A new secret version arrives as it is written.
	set, err := tv.secrets.SetSecret(ctxT(t), "site", azsecrets.SetSecretParameters{Value: to.Ptr("v1")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := s.nextOf("secret", "site")
	if e.event != "new_version" || e.data["version"] != set.ID.Version() || e.id != ready.id+1 {
		t.Errorf("event = %s id %d %v; want new_version id %d version %s", e.event, e.id, e.data, ready.id+1, set.ID.Version())
	}
	if want := tv.srv.URL() + "/secrets/site/" + set.ID.Version(); e.data["id"] != want {
		t.Errorf("event names object %v, want %s", e.data["id"], want)
	}

	// A certificate's new version, and disabling it, arrive too.
	name := "events-cert"
	imported := tv.importCertificate(t, name)
	if e := s.nextOf("certificate", name); e.event != "new_version" || e.data["version"] != imported {
		t.Errorf("certificate event = %s %v, want new_version of %s", e.event, e.data, imported)
	}
	if _, err := tv.secrets.UpdateSecretProperties(ctxT(t), "site", set.ID.Version(),
		azsecrets.UpdateSecretPropertiesParameters{SecretAttributes: &azsecrets.SecretAttributes{Enabled: to.Ptr(false)}}, nil); err != nil {
		t.Fatal(err)
	}
	if e := s.nextOf("secret", "site"); e.event != "updated" {
		t.Errorf("after disabling: %s, want updated", e.event)
	}

	// A reconnect from the ready position replays every event since.
	_, again := tv.openEvents(t, tv.adminToken(), fmt.Sprint(ready.id))
	if e := again.next(); e.event != "ready" || e.id != ready.id {
		t.Errorf("reconnect starts with %s id %d, want ready id %d", e.event, e.id, ready.id)
	}
	if e := again.next(); e.id != ready.id+1 || e.data["name"] != "site" {
		t.Errorf("replayed event = %d %v, want id %d for site", e.id, e.data, ready.id+1)
	}

	t.Run("reader of secrets only", func(t *testing.T) {
		tok := tv.readerToken(t, map[string][]string{"secrets": {"get"}})
		_, rs := tv.openEvents(t, tok, fmt.Sprint(ready.id))
		rs.next() // ready
		for i := 0; ; i++ {
			e := rs.next()
			if e.data["kind"] == "certificate" {
				t.Fatalf("a reader without certificates get saw %v", e.data)
			}
			if e.event == "updated" { // the last event written above
				break
			}
		}
	})

	t.Run("no grant", func(t *testing.T) {
		tok := tv.readerToken(t, map[string][]string{"secrets": {"list"}, "certificates": {"list"}})
		if status, _ := tv.openEvents(t, tok, ""); status != http.StatusForbidden {
			t.Errorf("stream without get: %d, want 403", status)
		}
	})

	t.Run("no token", func(t *testing.T) {
		if status, _ := tv.openEvents(t, "", ""); status != http.StatusUnauthorized {
			t.Errorf("stream without a token: %d, want 401", status)
		}
	})

	t.Run("bad Last-Event-ID", func(t *testing.T) {
		if status, _ := tv.openEvents(t, tv.adminToken(), "yesterday"); status != http.StatusBadRequest {
			t.Errorf("stream from id \"yesterday\": %d, want 400", status)
		}
	})
}

// TestEventStreamSaysWhenEventsAreGone reconnects from ids whose
// successors the vault no longer has, pruned after their retention or
// never written, and is told to re-read everything.
func TestEventStreamSaysWhenEventsAreGone(t *testing.T) {
	tv := startVault(t, "", func(c *server.Config) { c.PurgeInterval = 20 * time.Millisecond })
	for i := range 3 {
		if _, err := tv.secrets.SetSecret(ctxT(t), fmt.Sprint("s", i), azsecrets.SetSecretParameters{Value: to.Ptr("v")}, nil); err != nil {
			t.Fatal(err)
		}
	}
	_, s := tv.openEvents(t, tv.adminToken(), "")
	last := s.next().id
	s.close()

	if _, future := tv.openEvents(t, tv.adminToken(), fmt.Sprint(last+100)); future.next().event != "reset" {
		t.Error("a reconnect from an id the vault never reached was not told to re-read")
	}

	// Past the retention, the purger prunes the events.
	tv.clock.Advance(8 * 24 * time.Hour)
	tv.connect()
	tok := tv.adminToken()
	var first sse
	waitFor(t, func() bool {
		_, st := tv.openEvents(t, tok, "1")
		first = st.next()
		st.close()
		return first.event == "reset"
	})
	if first.id != last {
		t.Errorf("reset positions the subscriber at %d, want the newest id %d", first.id, last)
	}
}

// importCertificate imports a fresh certificate of an outside CA as name
// and returns its version.
func (tv *testVault) importCertificate(t *testing.T, name string) string {
	t.Helper()
	b := newOutsideCA(t).issue(t, name+".example", pki.KeySpec{Type: pki.KeyTypeEC, Curve: pki.CurveP256},
		time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
	pem, err := b.EncodePEM()
	if err != nil {
		t.Fatal(err)
	}
	r, err := tv.certs().ImportCertificate(ctxT(t), name, azcertificates.ImportCertificateParameters{
		Base64EncodedCertificate: to.Ptr(string(pem)),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r.ID.Version()
}

// readerToken creates a principal with perms on the default vault and
// returns a data-plane token of it.
func (tv *testVault) readerToken(t *testing.T, perms map[string][]string) string {
	t.Helper()
	sp, secret, err := tv.srv.Authority().CreateServicePrincipal(ctxT(t), "events-reader", nil)
	if err != nil {
		t.Fatal(err)
	}
	tv.setPermissions(t, sp.ObjectID, perms)
	c := tv.creds
	c.ClientID, c.ClientSecret = sp.ClientID, secret
	tok, err := c.Token(ctxT(t), tv.http, tv.srv.Resource()+"/.default")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestShutdownEndsEventStreams stops a vault with a subscriber attached:
// the stream ends and the server stops cleanly rather than waiting out its
// shutdown deadline for a handler that never returns.
func TestShutdownEndsEventStreams(t *testing.T) {
	tv := startVault(t, "", func(c *server.Config) { c.ShutdownTimeout = time.Minute })
	_, s := tv.openEvents(t, tv.adminToken(), "")
	s.next() // ready
	stopped := make(chan struct{})
	go func() { tv.stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(20 * time.Second):
		t.Fatal("the server did not stop with an event stream open")
	}
	for range s.events {
	}
}

// TestEventStreamEndsWhenAccessEnds ends open streams whose caller loses
// its grant or whom the network rules come to deny, as a new request
// would be refused.
func TestEventStreamEndsWhenAccessEnds(t *testing.T) {
	tv := startVault(t, "")
	sp, secret, err := tv.srv.Authority().CreateServicePrincipal(ctxT(t), "stream-reader", nil)
	if err != nil {
		t.Fatal(err)
	}
	c := tv.creds
	c.ClientID, c.ClientSecret = sp.ClientID, secret
	tok, err := c.Token(ctxT(t), tv.http, tv.srv.Resource()+"/.default")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name           string
		withdraw, undo func()
	}{
		{"grant removed",
			func() { tv.setPolicy("remove", sp.ObjectID) },
			func() {}},
		{"network rules deny",
			func() { tv.setNetworkACLs("Deny", "None", "10.0.0.0/8") },
			func() { tv.setNetworkACLs("Allow", "None") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tv.setPolicy("add", sp.ObjectID, "get")
			status, s := tv.openEvents(t, tok, "")
			if status != http.StatusOK {
				t.Fatalf("open: %d", status)
			}
			s.next() // ready
			tc.withdraw()
			defer tc.undo()
			select {
			case e, ok := <-s.events:
				if ok {
					t.Fatalf("got %s %v, want the stream to end", e.event, e.data)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the stream is still open after access ended")
			}
		})
	}
}

// TestEventStreamLimit refuses a caller more streams from one address
// than its limit with 429 Throttled and a Retry-After, counts another
// caller apart, and admits the caller again once one of its streams ends.
func TestEventStreamLimit(t *testing.T) {
	tv := startVault(t, "", func(c *server.Config) { c.MaxCallerEventStreams = 2 })
	reader := tv.readerToken(t, map[string][]string{"secrets": {"get"}})
	var open []*eventStream
	for range 2 {
		st, s := tv.openEvents(t, reader, "")
		if st != http.StatusOK {
			t.Fatalf("stream within the limit: %d", st)
		}
		s.next() // ready
		open = append(open, s)
	}

	resp, body := tv.do(http.MethodGet, "/keygate/events"+cq, reader, "")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "Throttled") {
		t.Fatalf("stream over the limit: %d %q (Retry-After %q), want 429 Throttled with Retry-After",
			resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	if st, s := tv.openEvents(t, tv.adminToken(), ""); st != http.StatusOK {
		t.Errorf("another caller's stream: %d, want 200", st)
	} else {
		s.close()
	}

	open[0].close()
	for i := 0; ; i++ {
		st, s := tv.openEvents(t, reader, "")
		if st == http.StatusOK {
			s.close()
			break
		}
		if i == 100 {
			t.Fatalf("a stream after one of the caller's ended: %d, want 200", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
