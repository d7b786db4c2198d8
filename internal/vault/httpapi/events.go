package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keygate/keygate/internal/authz"
	"github.com/keygate/keygate/internal/vault"
)

// The event stream is keygate's extension to the Key Vault API: a vault's
// change events as server-sent events, so that a gateway learns of a new
// certificate version at once instead of at its next poll. Key Vault has
// no such endpoint; a client pointed at Azure gets 404 and polls.
//
//	GET /keygate/events?api-version=V[&after=ID]
//	Last-Event-ID: ID   (sent by EventSource clients on reconnect)
//
// The stream opens with a "ready" event whose id is the position it starts
// from: after the id the subscriber gave, or the newest event when it gave
// none. Events then follow as they are recorded, each with its id, its
// type as the event name and an eventJSON as data. When the events after
// the subscriber's id are no longer all kept, a "reset" event comes first:
// the subscriber must re-read everything it follows. A comment line every
// heartbeat keeps proxies from closing an idle stream.
//
// A caller sees the events of the kinds it may get: secrets with secrets
// get, certificates with certificates get. The stream ends when the token
// expires, when the caller's grants no longer let it read, or when the
// server shuts down; the subscriber reconnects with the last id it saw.
const eventsPath = "/keygate/events"

// Stream timing. The fallback poll covers stores that cannot notify.
const (
	streamHeartbeat    = 15 * time.Second
	streamFallbackPoll = 5 * time.Second
	streamBatch        = 100
)

// eventJSON is an event on the wire. ID is the object's id as Key Vault
// writes ids, with the version when the event names one.
type eventJSON struct {
	Sequence uint64 `json:"sequence"`
	Time     int64  `json:"time"`
	Type     string `json:"type"`
	Kind     string `json:"kind"`
	Name     string `json:"name"`
	Version  string `json:"version,omitempty"`
	ID       string `json:"id"`
	Detail   string `json:"detail,omitempty"`
}

func (h *Handler) eventRoutes() {
	h.mux.Handle("GET "+eventsPath, h.op("", "", "NotFound", h.streamEvents))
}

// EndStreams ends every open event stream, for a server that is shutting
// down: http.Server.Shutdown waits for handlers, and a stream never ends
// by itself. It is safe to call more than once.
func (h *Handler) EndStreams() { h.endStreams() }

// streamEvents serves the event stream; see eventsPath.
func (h *Handler) streamEvents(w http.ResponseWriter, r *http.Request, c *call) error {
	if _, err := h.visibleKinds(r, c); err != nil {
		return err
	}
	after, given, err := streamStart(r)
	if err != nil {
		return err
	}
	release, err := h.streams.open(c.principal.ObjectID + " " + c.addr.String())
	if err != nil {
		return err
	}
	defer release()

	// Subscribe before reading the position, so that no event recorded
	// between the two goes unnoticed.
	wake, unsubscribe := h.vaults.SubscribeEvents(c.vault)
	defer unsubscribe()
	changed, unsubscribeChanges := h.vaults.SubscribeVaultChanges()
	defer unsubscribeChanges()
	last, err := h.vaults.LastEventID(r.Context(), c.vault)
	if err != nil {
		return err
	}
	reset, err := h.missedEvents(r, c.vault, after, last, given)
	if err != nil {
		return err
	}
	if !given || reset {
		after = last
	}

	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	s := &stream{w: w, rc: http.NewResponseController(w)}
	if reset {
		s.send("reset", after, map[string]string{"reason": "events after the given id are no longer kept: re-read every object"})
	}
	s.send("ready", after, map[string]uint64{"lastEventId": after})
	if err := s.flush(); err != nil {
		return nil // the client is gone
	}
	h.log.Debug("event stream opened", "vault", c.vault, "object_id", c.principal.ObjectID,
		"after", after, "request_id", c.requestID)

	h.pump(r, c, s, after, wake, changed)
	return nil
}

// pump sends events as they are recorded until the stream must end.
func (h *Handler) pump(r *http.Request, c *call, s *stream, after uint64, wake, changed <-chan struct{}) {
	heartbeat := time.NewTicker(streamHeartbeat)
	defer heartbeat.Stop()
	poll := time.NewTicker(streamFallbackPoll)
	defer poll.Stop()
	lifetime := time.Until(c.principal.Expires)
	if c.principal.Expires.IsZero() {
		lifetime = time.Hour
	}
	expiry := time.NewTimer(lifetime)
	defer expiry.Stop()

	for {
		// The backlog first, then whatever each wake-up brings. The
		// grants and network rules may have changed since the stream
		// opened, and the vault may be gone.
		kinds, err := h.stillAdmitted(r, c)
		if err != nil {
			c.reason = err.Error()
			return
		}
		next, err := h.sendNew(r, c, s, kinds, after)
		if err != nil {
			h.log.Warn("event stream failed", "vault", c.vault, "request_id", c.requestID, "err", err)
			return
		}
		after = next
		if s.flush() != nil {
			return
		}

		select {
		case <-r.Context().Done():
			return
		case <-h.streamsDone:
			return
		case <-expiry.C:
			c.reason = "token expired: stream ended"
			return
		case <-heartbeat.C:
			s.comment("heartbeat")
		case <-wake:
		case <-changed:
		case <-poll.C:
		}
	}
}

// sendNew sends the events after id that the caller may see, and returns
// the id of the last event read.
func (h *Handler) sendNew(r *http.Request, c *call, s *stream, kinds map[string]bool, after uint64) (uint64, error) {
	for {
		evs, err := h.vaults.Events(r.Context(), c.vault, after, streamBatch)
		if err != nil {
			return after, err
		}
		for _, e := range evs {
			after = e.ID
			if kinds[e.Kind] {
				s.send(e.Type, e.ID, h.eventWire(r, e))
			}
		}
		if len(evs) < streamBatch {
			return after, nil
		}
	}
}

// visibleKinds returns the kinds of object whose events the caller may
// see, or the 403 a caller that may see none gets.
func (h *Handler) visibleKinds(r *http.Request, c *call) (map[string]bool, error) {
	v, err := h.vaults.Vault(r.Context(), c.vault)
	if err != nil {
		return nil, err
	}
	kinds := map[string]bool{
		vault.KindSecret:      authz.Allows(v.AccessPolicies, c.principal, authz.KindSecrets, authz.SecretGet),
		vault.KindCertificate: authz.Allows(v.AccessPolicies, c.principal, authz.KindCertificates, authz.CertificateGet),
	}
	if !kinds[vault.KindSecret] && !kinds[vault.KindCertificate] {
		return nil, &apiError{
			Status: http.StatusForbidden, Code: "Forbidden", Inner: "AccessDenied",
			Message: sprintf("The user, group or application 'appid=%s;oid=%s' has neither secrets get nor certificates get permission on key vault '%s', which reading its events needs.",
				c.principal.ClientID, c.principal.ObjectID, c.vault),
		}
	}
	return kinds, nil
}

// stillAdmitted checks an open stream's caller against the vault's
// current network rules and grants, as a new request would be.
// It returns the kinds of event the caller may see now.
func (h *Handler) stillAdmitted(r *http.Request, c *call) (map[string]bool, error) {
	v, err := h.vaults.Vault(r.Context(), c.vault)
	if err != nil {
		return nil, errors.New("vault unavailable: stream ended")
	}
	switch authz.CheckNetwork(v.NetworkACLs, c.addr) {
	case authz.NetworkDenied:
		return nil, fmt.Errorf("network rules now deny %s: stream ended", c.addr)
	case authz.NetworkDeniedUnlessService:
		if !c.principal.HasRole(authz.RoleService) {
			return nil, fmt.Errorf("network rules now deny %s: stream ended", c.addr)
		}
	}
	kinds, err := h.visibleKinds(r, c)
	if err != nil {
		return nil, errors.New("access withdrawn: stream ended")
	}
	return kinds, nil
}

// streamStart reads where the subscriber wants to start: Last-Event-ID,
// else the after parameter. given is false when it named neither.
func streamStart(r *http.Request) (after uint64, given bool, err error) {
	raw, field := r.Header.Get("Last-Event-ID"), "Last-Event-ID"
	if raw == "" {
		raw, field = r.URL.Query().Get("after"), "after"
	}
	if raw == "" {
		return 0, false, nil
	}
	after, err = strconv.ParseUint(raw, 10, 64)
	if err != nil {
		return 0, false, badRequest("%s: %q is not an event id (a whole number)", field, truncate(raw, 24))
	}
	return after, true, nil
}

// missedEvents reports whether a subscriber that last saw event after has
// missed some that are no longer kept: the first kept event after it is
// not its successor, or it names an id the vault never reached (a restored
// database, another vault's id).
func (h *Handler) missedEvents(r *http.Request, vaultName string, after, last uint64, given bool) (bool, error) {
	if !given || after == last {
		return false, nil
	}
	if after > last {
		return true, nil
	}
	evs, err := h.vaults.Events(r.Context(), vaultName, after, 1)
	if err != nil {
		return false, err
	}
	return len(evs) == 0 || evs[0].ID != after+1, nil
}

// eventWire is e as the stream sends it.
func (h *Handler) eventWire(r *http.Request, e vault.Event) eventJSON {
	collection := "secrets"
	if e.Kind == vault.KindCertificate {
		collection = "certificates"
	}
	id := "https://" + r.Host + "/" + collection + "/" + e.Name
	if e.Version != "" {
		id += "/" + e.Version
	}
	return eventJSON{
		Sequence: e.ID, Time: e.Time.Unix(), Type: e.Type, Kind: e.Kind,
		Name: e.Name, Version: e.Version, ID: id, Detail: e.Detail,
	}
}

// stream writes server-sent events. Write errors are remembered by the
// connection and surface at the next flush.
type stream struct {
	w  io.Writer
	rc *http.ResponseController
}

func (s *stream) send(event string, id uint64, data any) {
	b, _ := json.Marshal(data) // the wire types always encode
	fmt.Fprintf(s.w, "event: %s\nid: %d\ndata: %s\n\n", sanitizeField(event), id, b)
}

func (s *stream) comment(text string) {
	fmt.Fprintf(s.w, ": %s\n\n", text)
	s.flush()
}

func (s *stream) flush() error { return s.rc.Flush() }

// sanitizeField keeps a field of the stream on one line.
func sanitizeField(s string) string {
	return strings.NewReplacer("\n", " ", "\r", " ").Replace(s)
}

// streamCounts counts the open event streams, in all and by caller, and
// refuses one more beyond the limits with 429 (which clients retry after
// Retry-After, as Key Vault's throttling asks).
type streamCounts struct {
	max, maxCaller int

	mu       sync.Mutex
	total    int
	byCaller map[string]int
}

func newStreamCounts(max, maxCaller int) streamCounts {
	if max <= 0 {
		max = DefaultMaxStreams
	}
	if maxCaller <= 0 {
		maxCaller = DefaultMaxCallerStreams
	}
	return streamCounts{max: max, maxCaller: maxCaller, byCaller: map[string]int{}}
}

// streamRetryAfter is the Retry-After of a refused stream, in seconds.
const streamRetryAfter = 30

// open counts a stream of caller, or refuses it; release uncounts it.
func (sc *streamCounts) open(caller string) (release func(), err error) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	switch {
	case sc.total >= sc.max:
		return nil, throttled("this server has %d event streams open, its most; retry later", sc.max)
	case sc.byCaller[caller] >= sc.maxCaller:
		return nil, throttled("this caller has %d event streams open from its address, its most; close one or retry later", sc.maxCaller)
	}
	sc.total++
	sc.byCaller[caller]++
	return sync.OnceFunc(func() {
		sc.mu.Lock()
		defer sc.mu.Unlock()
		sc.total--
		if sc.byCaller[caller]--; sc.byCaller[caller] == 0 {
			delete(sc.byCaller, caller)
		}
	}), nil
}
