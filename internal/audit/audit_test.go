package audit

import (
	"bufio"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/testkit"
)

func TestWriterLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	w, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			w.Log(Record{Source: SourceVault, Operation: "SecretGet", ObjectName: strings.Repeat("n", i), Status: 200})
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	w.Log(Record{Operation: "after close"}) // dropped, not a panic

	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("audit file mode %v, %v", fi.Mode(), err)
	}
	f, _ := os.Open(path)
	defer f.Close()
	n := 0
	for sc := bufio.NewScanner(f); sc.Scan(); n++ {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %d is not one record: %q", n, sc.Text())
		}
		if r.Time.IsZero() || r.Time.Location() != time.UTC || r.Operation != "SecretGet" {
			t.Errorf("record %+v", r)
		}
	}
	if n != 50 {
		t.Errorf("%d lines, want 50", n)
	}

	// Opening again appends.
	w, _ = Open(path, nil)
	w.Log(Record{Operation: "again"})
	w.Close()
	b, _ := os.ReadFile(path)
	if c := strings.Count(string(b), "\n"); c != 51 {
		t.Errorf("%d lines after reopening, want 51", c)
	}
}

func TestWriterFieldNames(t *testing.T) {
	var b strings.Builder
	NewWriter(&b, nil).Log(Record{
		Time: time.Unix(0, 0), Source: SourceVault, Operation: "SecretGet", Vault: "v", ObjectName: "n",
		ObjectVersion: "0123", CallerObjectID: "oid", CallerAddress: "127.0.0.2", Status: 403,
		RequestID: "r", Reason: "denied",
	})
	var m map[string]any
	if err := json.Unmarshal([]byte(b.String()), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"time", "source", "operationName", "vault", "objectName", "objectVersion",
		"callerObjectId", "callerIpAddress", "resultStatus", "requestId", "reason"} {
		if _, ok := m[k]; !ok {
			t.Errorf("record lacks %q: %s", k, b.String())
		}
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteFailureLoggedOnce(t *testing.T) {
	var logs strings.Builder
	w := NewWriter(failingWriter{}, slog.New(slog.NewTextHandler(&logs, nil)))
	for range 3 {
		w.Log(Record{Operation: "x"})
	}
	if c := strings.Count(logs.String(), "writing audit log"); c != 1 {
		t.Errorf("failure logged %d times, want once:\n%s", c, logs.String())
	}
	if _, err := Open("", nil); err == nil {
		t.Error("Open with no destination succeeded")
	}
}

func TestRecorder(t *testing.T) {
	for _, tc := range []struct {
		handler http.HandlerFunc
		want    int
	}{
		{func(w http.ResponseWriter, r *http.Request) {}, 200},
		{func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("x")) }, 200},
		{func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(403); w.WriteHeader(500) }, 403},
	} {
		rec := NewRecorder(httptest.NewRecorder())
		tc.handler(rec, httptest.NewRequest("GET", "/", nil))
		if rec.Status() != tc.want {
			t.Errorf("status %d, want %d", rec.Status(), tc.want)
		}
	}
}

// recordList keeps the records logged to it.
type recordList struct {
	mu   sync.Mutex
	recs []Record
}

func (l *recordList) Log(r Record) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r)
}

func TestTee(t *testing.T) {
	if Tee() != Discard || Tee(nil, Discard) != Discard {
		t.Errorf("Tee of nothing but Discard is not Discard")
	}
	one := &recordList{}
	if Tee(Discard, one) != Logger(one) {
		t.Errorf("Tee of one logger and Discard is not that logger")
	}
	two := &recordList{}
	Tee(one, Discard, two).Log(Record{Operation: "SecretGet"})
	if len(one.recs) != 1 || len(two.recs) != 1 || two.recs[0].Operation != "SecretGet" {
		t.Errorf("Tee delivered %d and %d records, want one to each", len(one.recs), len(two.recs))
	}
}

func TestSince(t *testing.T) {
	start := time.Now().Add(-1500 * time.Microsecond)
	if ms := Since(start); ms < 1.5 || ms > 1000 {
		t.Errorf("Since 1.5 ms ago = %v ms", ms)
	}
}

// TestRefusing fails a Writer closed only when Require was called and its
// last write failed, through a Tee too, and opens it again with the first
// write that succeeds.
func TestRefusing(t *testing.T) {
	disk := testkit.NewDiskFull(t)
	w := NewWriter(disk, nil)
	other := &recordList{}
	both := Tee(other, w)

	disk.SetFull(true)
	w.Log(Record{Operation: "lost"})
	if Refusing(w) {
		t.Fatal("a Writer not required refuses")
	}
	w.Require()
	if !Refusing(w) || !Refusing(both) {
		t.Fatalf("a required Writer whose last write failed does not refuse (alone %v, teed %v)", Refusing(w), Refusing(both))
	}
	if Refusing(other) || Refusing(Discard) {
		t.Error("a Logger that is no Writer refuses")
	}

	disk.SetFull(false)
	both.Log(Record{Operation: "probe"})
	if Refusing(both) {
		t.Error("still refusing after a write succeeded")
	}
	if !strings.Contains(disk.String(), `"operationName":"probe"`) || strings.Contains(disk.String(), "lost") {
		t.Errorf("the log holds %q, want the probe only", disk.String())
	}
}
