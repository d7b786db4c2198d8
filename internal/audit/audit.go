// Package audit writes keygate's audit log: one JSON line per request to
// the vault's data plane, its management API, the identity authority's
// managed-identity endpoints and the host agent, saying who asked for
// what, from where, and what came of it.
//
// A record names callers, vaults and objects; it never holds secret
// material. The fields that could (a denial's reason) are filled only from
// messages that are already safe to show a client.
package audit

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"
)

// Sources of records: which part of keygate served the request.
const (
	SourceVault      = "vault"      // the Key Vault data plane
	SourceManagement = "management" // keygate's management API
	SourceAuthority  = "authority"  // the identity authority
	SourceAgent      = "agent"      // a host's managed-identity agent
)

// Record is one audited request. Its JSON field names follow Azure Key
// Vault's diagnostic log where one exists (operationName, callerIpAddress).
type Record struct {
	Time      time.Time `json:"time"`
	Source    string    `json:"source"`
	Operation string    `json:"operationName"`

	// Vault is the vault the request addressed, if any.
	Vault string `json:"vault,omitempty"`

	// ObjectName and ObjectVersion name the object the request addressed:
	// a secret, a certificate, an identity, a host.
	ObjectName    string `json:"objectName,omitempty"`
	ObjectVersion string `json:"objectVersion,omitempty"`

	// CallerObjectID and CallerClientID name the authenticated caller;
	// both are empty when the request was refused before authentication.
	// CallerHost is the host an agent or host credential acted for.
	CallerObjectID string `json:"callerObjectId,omitempty"`
	CallerClientID string `json:"callerClientId,omitempty"`
	CallerHost     string `json:"callerHost,omitempty"`
	CallerAddress  string `json:"callerIpAddress"`

	Method    string `json:"method,omitempty"`
	Path      string `json:"path,omitempty"` // without the query
	Status    int    `json:"resultStatus"`
	RequestID string `json:"requestId,omitempty"`

	// Reason says why a request was refused or failed; empty on success.
	Reason string `json:"reason,omitempty"`

	// DurationMs is how long serving the request took, in milliseconds
	// with microseconds as the fraction.
	DurationMs float64 `json:"durationMs"`
}

// Since is the time since start in milliseconds, as DurationMs has it,
// read from the monotonic clock: a driven clock must not bend it.
func Since(start time.Time) float64 {
	return float64(time.Since(start).Microseconds()) / 1000
}

// Logger receives audit records. Implementations must be safe for
// concurrent use. A nil Logger is not allowed; use Discard.
type Logger interface {
	Log(Record)
}

// Discard is a Logger that keeps nothing.
var Discard Logger = discard{}

type discard struct{}

func (discard) Log(Record) {}

// Tee returns a Logger that passes each record to every one of loggers
// that is not Discard; Discard when none is left.
func Tee(loggers ...Logger) Logger {
	var kept tee
	for _, l := range loggers {
		if l != nil && l != Discard {
			kept = append(kept, l)
		}
	}
	switch len(kept) {
	case 0:
		return Discard
	case 1:
		return kept[0]
	}
	return kept
}

type tee []Logger

func (t tee) Log(r Record) {
	for _, l := range t {
		l.Log(r)
	}
}

// Refusing reports whether requests must be refused now because l, or a
// Logger it tees to, is a Writer that Require made fail closed and its
// last write failed.
//
// A refused request is still logged: its record is the probe that finds
// the log writable again, and the first that succeeds lets requests
// through once more. The request whose record first failed was already
// answered; the refusals begin with the next one.
func Refusing(l Logger) bool {
	switch l := l.(type) {
	case *Writer:
		return l.refusing()
	case tee:
		for _, t := range l {
			if Refusing(t) {
				return true
			}
		}
	}
	return false
}

// RefusalMessage is what a request refused by Refusing is told.
const RefusalMessage = "the audit log cannot be written, and this server refuses requests until it can"

// Writer writes records as JSON lines to an io.Writer, one Write per
// record, so that lines from concurrent requests never interleave. It is
// safe for concurrent use.
type Writer struct {
	log *slog.Logger // where write failures are reported

	mu       sync.Mutex
	w        io.Writer
	closer   io.Closer // nil when the Writer does not own w
	failed   bool      // a write failed; reported once until one succeeds
	required bool      // while failed, requests are refused (Require)
}

// Require makes the Writer fail closed: while its last write failed,
// Refusing reports true, and servers refuse requests rather than serve
// them unaudited.
func (w *Writer) Require() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.required = true
}

func (w *Writer) refusing() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.required && w.failed
}

// NewWriter returns a Writer on w. It does not close w. Write failures are
// reported to log (nil discards them).
func NewWriter(w io.Writer, log *slog.Logger) *Writer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Writer{w: w, log: log}
}

// Open returns a Writer for an audit log destination as given on the
// command line: "-" for standard output, otherwise a file path, opened for
// appending and created with mode 0600. Close closes the file.
func Open(dest string, log *slog.Logger) (*Writer, error) {
	if dest == "" {
		return nil, errors.New("opening audit log: no destination given")
	}
	if dest == "-" {
		return NewWriter(os.Stdout, log), nil
	}
	f, err := os.OpenFile(dest, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening audit log: %w", err)
	}
	w := NewWriter(f, log)
	w.closer = f
	return w, nil
}

// Log writes r as one JSON line. A failed write is logged at error level,
// once per run of failures; unless Require was called, requests go on
// being served.
func (w *Writer) Log(r Record) {
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	r.Time = r.Time.UTC()
	b, err := json.Marshal(r)
	if err != nil {
		w.log.Error("encoding audit record", "operation", r.Operation, "err", err)
		return
	}
	b = append(b, '\n')

	w.mu.Lock()
	defer w.mu.Unlock()
	if _, err := w.w.Write(b); err != nil {
		if !w.failed {
			w.log.Error("writing audit log", "err", err, "refusing_requests", w.required)
		}
		w.failed = true
		return
	}
	if w.failed {
		w.log.Info("audit log writable again")
	}
	w.failed = false
}

// Close closes the file Open opened; it is a no-op for other Writers and
// safe to call more than once.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closer == nil {
		return nil
	}
	err := w.closer.Close()
	w.closer = nil
	w.w = io.Discard
	return err
}

// Recorder is an http.ResponseWriter that remembers the status written
// through it, for the audit record of a request. Handlers that write no
// header leave the status at 200, as net/http does.
type Recorder struct {
	http.ResponseWriter
	status int
}

// NewRecorder wraps w.
func NewRecorder(w http.ResponseWriter) *Recorder { return &Recorder{ResponseWriter: w} }

// WriteHeader records status and passes it on.
func (r *Recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
	r.ResponseWriter.WriteHeader(status)
}

// Write passes b on, recording 200 if no status was written before.
func (r *Recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Status is the status written, 200 when none was.
func (r *Recorder) Status() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}

// Unwrap returns the wrapped writer, for http.ResponseController.
func (r *Recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// NewRequestID returns a random request id, 32 hex characters, for the
// x-ms-request-id header and the audit record of a request.
func NewRequestID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
