// Package push follows a keygate vault's event stream (GET
// /keygate/events, server-sent events), so that a gateway learns of a new
// certificate version the moment the vault records it rather than at its
// next poll. It authenticates as any Key Vault client does: the vault's
// bearer challenge names the resource, and an azidentity credential
// obtains a token for it.
//
// Push only speeds things up. A vault that offers no stream (Azure Key
// Vault answers 404) or cannot be reached leaves the gateway polling as
// before; the Subscriber keeps trying with backoff, and resumes from the
// last event it saw, so that no event recorded while it was away is lost.
package push

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/keygate/keygate/internal/client"
)

// Path is the event stream's path on the vault, with the api-version it
// is asked with.
const Path = "/keygate/events?api-version=7.5"

// Event is a change the vault recorded.
type Event struct {
	Sequence uint64 `json:"sequence"`
	Type     string `json:"type"`    // new_version, updated, deleted, recovered, ...
	Kind     string `json:"kind"`    // secret or certificate
	Name     string `json:"name"`    // the object's name
	Version  string `json:"version"` // the version the event is about, if any
	ID       string `json:"id"`      // the object's id URL
}

// Config configures a Subscriber. VaultURL, Credential and HTTPClient are
// required.
type Config struct {
	// VaultURL is the vault's origin, https://HOST[:PORT].
	VaultURL string

	// Credential obtains the bearer token, for the resource the vault's
	// challenge names.
	Credential azcore.TokenCredential

	// HTTPClient reaches the vault; it must trust its TLS. Its Timeout is
	// not applied to the stream, which stays open.
	HTTPClient *http.Client

	// OnEvent is called for each event, in order, from the Subscriber's
	// goroutine.
	OnEvent func(Event)

	// OnResync is called when events may have been missed: after the
	// first connection (nothing says what changed before it), when the
	// vault no longer keeps the events after the last one seen, and when
	// the stream opens again after the vault refused it (access may have
	// changed without an event). The gateway then re-reads everything it
	// follows.
	OnResync func()

	// OnDenied is called when the vault refuses the stream: no access
	// (401, 403), a firewall, no such vault. Access to the vault's
	// objects has likely changed too: a policy change records no event,
	// and this is how a gateway hears of it before its next poll.
	OnDenied func(error)

	// VerifyChallenge checks, as the Key Vault SDK does unless told
	// otherwise, that the vault's host lies under the resource its bearer
	// challenge names, so that the vault cannot obtain a token meant for
	// another service.
	VerifyChallenge bool

	// Logger receives state changes (stream up, stream down and why);
	// nil discards them.
	Logger *slog.Logger

	// MinBackoff and MaxBackoff bound the wait between connection
	// attempts; defaults 1 second and 5 minutes.
	MinBackoff, MaxBackoff time.Duration

	// IdleTimeout ends a connection on which nothing, not even the
	// vault's heartbeat, arrived for this long; default 1 minute.
	IdleTimeout time.Duration
}

// State is the subscription's state, for status reports.
type State struct {
	Connected bool      `json:"connected"`
	Since     time.Time `json:"since,omitzero"`
	LastEvent uint64    `json:"lastEventId,omitempty"`
	LastError string    `json:"lastError,omitempty"`

	// RetryAt is when the next connection attempt is due, while down.
	RetryAt time.Time `json:"retryAt,omitzero"`
}

// Subscriber follows one vault's event stream. Run does the work; State
// may be called from any goroutine.
type Subscriber struct {
	cfg  Config
	http *http.Client
	log  *slog.Logger

	mu    sync.Mutex
	state State
	// last is the id of the last event seen; 0 before the first
	// connection.
	last   uint64
	synced bool
	// denied is set while the vault refuses the stream.
	denied bool
}

// New returns a Subscriber. It does no I/O.
func New(cfg Config) *Subscriber {
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Minute
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = time.Minute
	}
	hc := *cfg.HTTPClient
	hc.Timeout = 0
	s := &Subscriber{cfg: cfg, http: &hc, log: cfg.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("vault", cfg.VaultURL)
	return s
}

// State reports whether the stream is up, since when, and the last error.
func (s *Subscriber) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.state
	st.LastEvent = s.last
	return st
}

// Run follows the stream until ctx ends, reconnecting with backoff. It
// may be called again after it returns, and then resumes from the last
// event seen.
func (s *Subscriber) Run(ctx context.Context) {
	wait := s.cfg.MinBackoff
	for ctx.Err() == nil {
		opened, err := s.follow(ctx)
		if ctx.Err() != nil {
			return
		}
		s.down(err)
		if opened {
			wait = s.cfg.MinBackoff
		}
		if errors.Is(err, errNoStream) {
			wait = s.cfg.MaxBackoff
		}
		var r *refusal
		if errors.As(err, &r) {
			s.deny(err)
		}
		// A vault that says when to come back (429 over its stream
		// limit, 503) is not asked sooner.
		var b *busy
		if errors.As(err, &b) {
			wait = max(wait, min(b.after, s.cfg.MaxBackoff))
		}
		s.setRetryAt(time.Now().Add(wait))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, s.cfg.MaxBackoff)
	}
}

// busy is the vault asking the subscriber to come back after a while.
type busy struct {
	status int
	after  time.Duration
}

func (b *busy) Error() string {
	return fmt.Sprintf("opening the event stream: %d %s, retry after %s", b.status, http.StatusText(b.status), b.after)
}

// retryAfter reads the wait a 429 or 503 answer asks for in its
// Retry-After (seconds), or returns nil.
func retryAfter(resp *http.Response) error {
	if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable {
		return nil
	}
	secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || secs <= 0 {
		return nil
	}
	return &busy{status: resp.StatusCode, after: time.Duration(secs) * time.Second}
}

func (s *Subscriber) setRetryAt(t time.Time) {
	s.mu.Lock()
	s.state.RetryAt = t
	s.mu.Unlock()
}

// errNoStream is a vault that offers no event stream, as Azure Key Vault
// does not.
var errNoStream = errors.New("opening the event stream: the vault offers none (404); polling only")

// refusal is the vault refusing the stream.
type refusal struct {
	status int
	code   string
}

func (r *refusal) Error() string {
	msg := fmt.Sprintf("opening the event stream: refused: %d %s", r.status, http.StatusText(r.status))
	if r.code != "" {
		msg += " (" + r.code + ")"
	}
	return msg
}

// refused returns the refusal resp is, or nil when it is none.
func refused(resp *http.Response) error {
	code := resp.Header.Get("x-ms-error-code")
	switch {
	case resp.StatusCode == http.StatusForbidden, resp.StatusCode == http.StatusUnauthorized,
		resp.StatusCode == http.StatusNotFound && code == "VaultNotFound":
		return &refusal{status: resp.StatusCode, code: code}
	}
	return nil
}

// follow makes one connection and reads it until it ends. opened says
// whether the vault accepted it.
func (s *Subscriber) follow(ctx context.Context) (opened bool, err error) {
	token, err := s.token(ctx)
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	resp, err := s.open(ctx, token)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()

	// Nothing for IdleTimeout, heartbeats included, means a dead
	// connection that TCP has not noticed: end it.
	idle := time.AfterFunc(s.cfg.IdleTimeout, cancel)
	defer idle.Stop()
	return true, s.read(resp.Body, func() { idle.Reset(s.cfg.IdleTimeout) })
}

// token learns the resource from the vault's challenge and obtains a
// token for it.
//
// TODO: a 401 that asks for more claims (continuous access evaluation) is
// taken as a refusal rather than answered with a token carrying them, as
// the SDK's policy does; keygate's vault never asks, and Azure Key Vault
// has no event stream.
func (s *Subscriber) token(ctx context.Context) (string, error) {
	resp, err := s.get(ctx, "")
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		// A firewall or a missing vault answers before any token.
		if err := refused(resp); err != nil {
			return "", err
		}
		if resp.StatusCode == http.StatusNotFound {
			return "", errNoStream
		}
		return "", fmt.Errorf("opening the event stream: %s without a token, want 401 and a challenge", resp.Status)
	}
	scope, err := client.ChallengeScope(resp.Header.Get("WWW-Authenticate"))
	if err != nil {
		return "", fmt.Errorf("opening the event stream: the vault's 401: %w", err)
	}
	if s.cfg.VerifyChallenge {
		if err := verifyScope(s.cfg.VaultURL, scope); err != nil {
			return "", err
		}
	}
	tok, err := s.cfg.Credential.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scope}})
	if err != nil {
		first, _, _ := strings.Cut(err.Error(), "\n")
		return "", fmt.Errorf("getting a token for the event stream: %s", first)
	}
	return tok.Token, nil
}

// open sends the authenticated request, resuming after the last event
// seen.
func (s *Subscriber) open(ctx context.Context, token string) (*http.Response, error) {
	resp, err := s.get(ctx, token)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		if err := refused(resp); err != nil {
			return nil, err
		}
		if resp.StatusCode == http.StatusNotFound {
			return nil, errNoStream
		}
		if err := retryAfter(resp); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("opening the event stream: %s (%s)", resp.Status, resp.Header.Get("x-ms-error-code"))
	}
	return resp, nil
}

func (s *Subscriber) get(ctx context.Context, token string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(s.cfg.VaultURL, "/")+Path, nil)
	if err != nil {
		return nil, fmt.Errorf("opening the event stream: %w", err)
	}
	req.Header.Set("Accept", "text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	s.mu.Lock()
	if s.synced {
		req.Header.Set("Last-Event-ID", strconv.FormatUint(s.last, 10))
	}
	s.mu.Unlock()
	resp, err := s.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("opening the event stream: %w", err)
	}
	return resp, nil
}

// read parses server-sent events from body until it ends, calling alive
// for every line.
func (s *Subscriber) read(body io.Reader, alive func()) error {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 4096), 64<<10)
	var event, id, data string
	for sc.Scan() {
		alive()
		line := sc.Text()
		if line != "" {
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "event":
				event = value
			case "id":
				id = value
			case "data":
				data += value
			}
			continue
		}
		if event != "" {
			s.dispatch(event, id, data)
		}
		event, id, data = "", "", ""
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading the event stream: %w", err)
	}
	return errors.New("the vault ended the event stream")
}

// dispatch handles one complete event.
func (s *Subscriber) dispatch(event, id, data string) {
	seq, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		s.log.Debug("event without a usable id ignored", "event", event)
		return
	}
	switch event {
	case "ready":
		s.up(seq)
	case "reset":
		s.log.Info("vault no longer has the events since the last one seen: re-reading everything")
		s.setLast(seq, true)
		s.resync()
	default:
		var e Event
		if err := json.Unmarshal([]byte(data), &e); err != nil {
			s.log.Debug("event with unreadable data ignored", "event", event, "id", seq)
			return
		}
		e.Sequence = seq
		s.setLast(seq, true)
		if s.cfg.OnEvent != nil {
			s.cfg.OnEvent(e)
		}
	}
}

// up records a stream opened at position seq. The first time, the
// gateway re-reads everything: changes made before the stream opened
// reached no one; and so after a refusal, as access may have come back
// without an event.
func (s *Subscriber) up(seq uint64) {
	s.mu.Lock()
	resync := !s.synced || s.denied
	s.last, s.synced, s.denied = seq, true, false
	s.state = State{Connected: true, Since: time.Now()}
	s.mu.Unlock()
	s.log.Info("vault event stream up", "last_event_id", seq)
	if resync {
		s.resync()
	}
}

func (s *Subscriber) down(err error) {
	s.mu.Lock()
	changed := s.state.Connected || s.state.LastError != err.Error()
	s.state = State{Connected: false, Since: time.Now(), LastError: err.Error()}
	s.mu.Unlock()
	if changed {
		s.log.Info("vault event stream down; polling continues", "error", err)
	}
}

// deny records that the vault refused the stream and tells the gateway.
func (s *Subscriber) deny(err error) {
	s.mu.Lock()
	s.denied = true
	s.mu.Unlock()
	if s.cfg.OnDenied != nil {
		s.cfg.OnDenied(err)
	}
}

func (s *Subscriber) setLast(seq uint64, synced bool) {
	s.mu.Lock()
	s.last, s.synced = seq, synced
	s.mu.Unlock()
}

func (s *Subscriber) resync() {
	if s.cfg.OnResync != nil {
		s.cfg.OnResync()
	}
}

// verifyScope checks that the vault's host is the scope's resource host
// or lies under it, ports included, as the Key Vault SDK checks a
// challenge.
func verifyScope(vaultURL, scope string) error {
	vu, err := url.Parse(vaultURL)
	if err != nil {
		return fmt.Errorf("opening the event stream: vault URL: %w", err)
	}
	ru, err := url.Parse(strings.TrimSuffix(scope, "/.default"))
	if err != nil || ru.Host == "" {
		return errors.New("opening the event stream: the vault's challenge names no resource host")
	}
	vh, rh := strings.ToLower(vu.Host), strings.ToLower(ru.Host)
	if vh != rh && !strings.HasSuffix(vh, "."+rh) {
		return fmt.Errorf("opening the event stream: the vault's challenge names resource %s, which %s is not under; "+
			"set keyVault.disableChallengeResourceVerification if that is expected", ru.Host, vu.Host)
	}
	return nil
}
