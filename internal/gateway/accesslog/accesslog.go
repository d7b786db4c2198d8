// Package accesslog writes the gateway's access log: one JSON line per
// request, buffered so that a busy gateway does not make a system call per
// request, and flushed at least once a second.
package accesslog

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"
)

// Entry is what one line says about a request. It holds no header values
// beyond the user agent, no query string and no cookies: those can carry
// secrets.
type Entry struct {
	Listener   string
	ClientIP   string
	Method     string
	Host       string
	Path       string
	Protocol   string
	TLSVersion string
	Status     int
	Bytes      int64
	Duration   time.Duration
	Rule       string
	Server     string
	UserAgent  string
}

// Log is an access log. A nil *Log discards entries. Safe for concurrent
// use.
type Log struct {
	log *slog.Logger
	w   *flushWriter
}

// Open opens the log at path: standard output when empty, nothing when
// "off", else the file, appended to and created with mode 0640.
func Open(path string) (*Log, error) {
	switch path {
	case "off":
		return nil, nil
	case "":
		return New(os.Stdout), nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("opening access log: %w", err)
	}
	l := New(f)
	l.w.closer = f
	return l, nil
}

// New returns a log writing to w.
func New(w io.Writer) *Log {
	fw := &flushWriter{buf: bufio.NewWriterSize(w, 64<<10), stop: make(chan struct{}), done: make(chan struct{})}
	go fw.flushLoop()
	return &Log{log: slog.New(slog.NewJSONHandler(fw, nil)), w: fw}
}

// Write logs e.
func (l *Log) Write(ctx context.Context, e *Entry) {
	if l == nil {
		return
	}
	l.log.LogAttrs(ctx, slog.LevelInfo, "request",
		slog.String("listener", e.Listener),
		slog.String("client_ip", e.ClientIP),
		slog.String("method", e.Method),
		slog.String("host", e.Host),
		slog.String("path", e.Path),
		slog.String("protocol", e.Protocol),
		slog.String("tls_version", e.TLSVersion),
		slog.Int("status", e.Status),
		slog.Int64("bytes", e.Bytes),
		slog.Float64("duration_ms", float64(e.Duration.Microseconds())/1000),
		slog.String("rule", e.Rule),
		slog.String("server", e.Server),
		slog.String("user_agent", e.UserAgent),
	)
}

// Close flushes the log and closes its file. Safe to call twice.
func (l *Log) Close() error {
	if l == nil {
		return nil
	}
	return l.w.close()
}

// flushWriter buffers writes and flushes them every second.
type flushWriter struct {
	mu     sync.Mutex
	buf    *bufio.Writer
	closer io.Closer

	once sync.Once
	stop chan struct{}
	done chan struct{}
}

func (w *flushWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *flushWriter) flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Flush()
}

func (w *flushWriter) flushLoop() {
	defer close(w.done)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			w.flush()
		}
	}
}

func (w *flushWriter) close() error {
	var err error
	w.once.Do(func() {
		close(w.stop)
		<-w.done
		err = w.flush()
		if w.closer != nil {
			if cerr := w.closer.Close(); err == nil {
				err = cerr
			}
		}
	})
	return err
}
