package seal_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/seal"
)

// testKeyBytes returns 32 distinctive bytes, so that a leak of any of them
// in any encoding is easy to spot.
func testKeyBytes() []byte {
	b := make([]byte, seal.KeySize)
	for i := range b {
		b[i] = byte(0xA0 + i)
	}
	return b
}

func mustKey(t testing.TB, b []byte) seal.Key {
	t.Helper()
	k, err := seal.NewKey(b)
	if err != nil {
		t.Fatalf("NewKey: %v", err)
	}
	return k
}

func TestNewKeyLength(t *testing.T) {
	tests := []struct {
		n       int
		wantErr bool
	}{
		{0, true},
		{16, true},
		{31, true},
		{32, false},
		{33, true},
		{64, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.n), func(t *testing.T) {
			_, err := seal.NewKey(make([]byte, tt.n))
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("NewKey(%d bytes) error = %v, want error %v", tt.n, err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), fmt.Sprintf("%d bytes", tt.n)) {
				t.Errorf("error %q does not name the length %d", err, tt.n)
			}
		})
	}
}

func TestNewKeyCopies(t *testing.T) {
	b := testKeyBytes()
	k := mustKey(t, b)
	before := k.Encode()
	b[0] ^= 0xFF
	if got := k.Encode(); got != before {
		t.Errorf("changing the caller's slice changed the key: got %q, want %q", got, before)
	}
}

func TestGenerateKey(t *testing.T) {
	a, err := seal.GenerateKey()
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	b, err := seal.GenerateKey()
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	if a.Encode() == b.Encode() {
		t.Error("two generated keys are equal")
	}
	raw, err := base64.StdEncoding.DecodeString(a.Encode())
	if err != nil || len(raw) != seal.KeySize {
		t.Errorf("generated key encodes to %d bytes (err %v), want %d", len(raw), err, seal.KeySize)
	}
}

func TestKeyID(t *testing.T) {
	k := mustKey(t, testKeyBytes())
	id := k.ID()
	if len(id) != 16 {
		t.Errorf("ID() = %q, want 16 hex characters", id)
	}
	if _, err := hex.DecodeString(id); err != nil {
		t.Errorf("ID() = %q is not hex: %v", id, err)
	}
	if again := mustKey(t, testKeyBytes()).ID(); again != id {
		t.Errorf("ID of an equal key = %q, want %q", again, id)
	}
	if strings.Contains(hex.EncodeToString(testKeyBytes()), id) {
		t.Errorf("ID %q is a slice of the key's hex", id)
	}
	other := testKeyBytes()
	other[31] ^= 1
	if got := mustKey(t, other).ID(); got == id {
		t.Errorf("keys differing in one bit share the ID %q", id)
	}
	if got := (seal.Key{}).ID(); got != "" {
		t.Errorf("zero Key ID() = %q, want empty", got)
	}
}

func TestParseKey(t *testing.T) {
	raw := testKeyBytes()
	want := mustKey(t, raw).Encode()
	tests := []struct {
		name    string
		in      string
		wantErr string // substring; empty means success
	}{
		{"standard padded", base64.StdEncoding.EncodeToString(raw), ""},
		{"standard unpadded", base64.RawStdEncoding.EncodeToString(raw), ""},
		{"URL padded", base64.URLEncoding.EncodeToString(raw), ""},
		{"URL unpadded", base64.RawURLEncoding.EncodeToString(raw), ""},
		{"trailing newline", base64.StdEncoding.EncodeToString(raw) + "\n", ""},
		{"surrounding space", "  " + base64.StdEncoding.EncodeToString(raw) + "\r\n", ""},
		{"empty", "", "key is empty"},
		{"blank", " \n", "key is empty"},
		{"short", base64.StdEncoding.EncodeToString(raw[:31]), "decodes to 31 bytes, want 32"},
		{"long", base64.StdEncoding.EncodeToString(append(raw, 0)), "decodes to 33 bytes, want 32"},
		{"bad character", "*" + base64.RawStdEncoding.EncodeToString(raw)[1:], "not base64"},
		{"mixed alphabets", "+-" + base64.RawStdEncoding.EncodeToString(raw)[2:], "not base64"},
		{"hex", hex.EncodeToString(raw), "want 32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := seal.ParseKey(tt.in)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ParseKey: %v", err)
				}
				if got := k.Encode(); got != want {
					t.Errorf("ParseKey(%q).Encode() = %q, want %q", tt.in, got, want)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseKey(%q) succeeded, want error containing %q", tt.in, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseKey(%q) error = %q, want it to contain %q", tt.in, err, tt.wantErr)
			}
			if in := strings.TrimSpace(tt.in); in != "" && strings.Contains(err.Error(), in) {
				t.Errorf("error %q echoes the input", err)
			}
		})
	}
}

func TestEncodeParseRoundTrip(t *testing.T) {
	k, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	back, err := seal.ParseKey(k.Encode())
	if err != nil {
		t.Fatalf("ParseKey(Encode()): %v", err)
	}
	if back.Encode() != k.Encode() || back.ID() != k.ID() {
		t.Errorf("round trip changed the key: ID %s, want %s", back.ID(), k.ID())
	}
	if got := (seal.Key{}).Encode(); got != "" {
		t.Errorf("zero Key Encode() = %q, want empty", got)
	}
}

// assertRedacted fails when out shows the key bytes in any usual encoding.
func assertRedacted(t *testing.T, out string, raw []byte) {
	t.Helper()
	leaks := []string{
		hex.EncodeToString(raw),
		strings.ToUpper(hex.EncodeToString(raw)),
		base64.StdEncoding.EncodeToString(raw),
		base64.RawURLEncoding.EncodeToString(raw),
		fmt.Sprint(raw)[:20],                       // "[160 161 162 ..."
		fmt.Sprintf("%#v", raw)[:20],               // "[]byte{0xa0, 0xa1, ..."
		fmt.Sprintf("%v", [2]byte{raw[0], raw[1]}), // "[160 161]"
		fmt.Sprintf("%x", raw[:4]),
		string(raw[:4]),
	}
	for _, leak := range leaks {
		if strings.Contains(out, leak) {
			t.Errorf("output %q contains key material %q", out, leak)
		}
	}
}

func TestKeyRedactsInFmt(t *testing.T) {
	raw := testKeyBytes()
	k := mustKey(t, raw)
	type holder struct {
		Exported   seal.Key
		unexported seal.Key
		ptr        *seal.Key
	}
	h := holder{Exported: k, unexported: k, ptr: &k}
	formats := []string{"%v", "%s", "%+v", "%#v", "%x", "%X", "%q", "%d", "%10.3v"}
	for _, f := range formats {
		t.Run(f, func(t *testing.T) {
			out := fmt.Sprintf(f, k)
			assertRedacted(t, out, raw)
			if !strings.Contains(out, k.ID()) {
				t.Errorf("Sprintf(%q, key) = %q, want it to name the ID %s", f, out, k.ID())
			}
			assertRedacted(t, fmt.Sprintf(f, &k), raw)
			assertRedacted(t, fmt.Sprintf(f, h), raw)
			assertRedacted(t, fmt.Sprintf(f, &h), raw)
			assertRedacted(t, fmt.Sprintf(f, []seal.Key{k}), raw)
		})
	}
	if got, want := k.String(), k.GoString(); got != want {
		t.Errorf("GoString() = %q, want %q like String()", want, got)
	}
	if got := (seal.Key{}).String(); !strings.Contains(got, "unset") {
		t.Errorf("zero Key String() = %q, want it to say unset", got)
	}
}

func TestKeyRedactsInSlog(t *testing.T) {
	raw := testKeyBytes()
	k := mustKey(t, raw)
	handlers := []struct {
		name string
		new  func(*bytes.Buffer) slog.Handler
	}{
		{"text", func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) }},
		{"JSON", func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) }},
	}
	for _, h := range handlers {
		t.Run(h.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(h.new(&buf))
			log.Info("loaded", "key", k, "key_ptr", &k, slog.Any("any", k), slog.Group("g", "k", k))
			out := buf.String()
			assertRedacted(t, out, raw)
			if !strings.Contains(out, k.ID()) {
				t.Errorf("log line %q does not name the key ID %s", out, k.ID())
			}
		})
	}
}
