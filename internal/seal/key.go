// Package seal encrypts keygate's records at rest.
//
// It uses envelope encryption: every record is encrypted with AES-256-GCM
// under a fresh random data key, and that data key is itself encrypted
// (wrapped) with AES-256-GCM under the master key. The master key lives
// outside the database, in a key file or an environment variable, so that a
// copy of the database alone reveals nothing.
package seal

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// KeySize is the length of a master key in bytes.
const KeySize = 32

// idSize is how many bytes of the key's HMAC identify it in an envelope.
const idSize = 8

// idLabel is the message whose HMAC under a key is that key's ID.
const idLabel = "keygate key id"

// Key is a 32-byte master key. The zero Key is unset and every function
// taking one rejects it.
//
// A Key redacts itself wherever it is printed: String, GoString, Format
// (every fmt verb) and LogValue show only its ID. Encode is the one way to
// get the key material out, for writing a key file.
type Key struct {
	// material returns the key bytes; it is nil for the zero Key. It is a
	// func, not the bytes or a pointer to them, because fmt prints a func
	// as an address whatever the verb. That matters where a Key sits in an
	// unexported field: fmt cannot call Key's methods there and walks its
	// fields instead (and follows a pointer, too, after a bad verb).
	material func() *[KeySize]byte
}

// newKey returns a Key holding b.
func newKey(b *[KeySize]byte) Key {
	return Key{material: func() *[KeySize]byte { return b }}
}

// isSet reports whether k holds a key.
func (k Key) isSet() bool { return k.material != nil }

// NewKey returns a Key holding a copy of b, which must be exactly 32 bytes.
func NewKey(b []byte) (Key, error) {
	if len(b) != KeySize {
		return Key{}, fmt.Errorf("creating key: key is %d bytes, want %d", len(b), KeySize)
	}
	m := new([KeySize]byte)
	copy(m[:], b)
	return newKey(m), nil
}

// GenerateKey returns a new random Key.
func GenerateKey() (Key, error) {
	m := new([KeySize]byte)
	if _, err := rand.Read(m[:]); err != nil {
		return Key{}, fmt.Errorf("generating key: %w", err)
	}
	return newKey(m), nil
}

// ParseKey parses the text form of a key: base64 of 32 bytes, in the
// standard or the URL alphabet, padded or not, surrounding white space
// ignored. It is meant for a key given in an environment variable.
func ParseKey(s string) (Key, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Key{}, fmt.Errorf("parsing key: key is empty")
	}
	enc := base64.RawStdEncoding
	if strings.ContainsAny(s, "-_") {
		enc = base64.RawURLEncoding
	}
	// Errors from the decoder give an offset, never the input.
	b, err := enc.Strict().DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return Key{}, fmt.Errorf("parsing key: key is not base64: %w", err)
	}
	if len(b) != KeySize {
		return Key{}, fmt.Errorf("parsing key: key decodes to %d bytes, want %d", len(b), KeySize)
	}
	return NewKey(b)
}

// Encode returns the text form of k (standard padded base64), as written to
// key files. It is the only method that reveals the key; the zero Key
// encodes as "".
func (k Key) Encode() string {
	if !k.isSet() {
		return ""
	}
	return base64.StdEncoding.EncodeToString(k.material()[:])
}

// ID returns a short, stable identifier of k: the hex of the first 8 bytes
// of HMAC-SHA256(k, "keygate key id"). It does not reveal the key and is
// safe to log. The zero Key has the ID "".
func (k Key) ID() string {
	if !k.isSet() {
		return ""
	}
	id := k.id()
	return hex.EncodeToString(id[:])
}

func (k Key) id() [idSize]byte {
	mac := hmac.New(sha256.New, k.material()[:])
	mac.Write([]byte(idLabel))
	var id [idSize]byte
	copy(id[:], mac.Sum(nil))
	return id
}

// String returns a redacted description of k that names only its ID.
func (k Key) String() string {
	if !k.isSet() {
		return "seal.Key(unset)"
	}
	return "seal.Key(REDACTED, id " + k.ID() + ")"
}

// GoString is like String, so that %#v redacts too.
func (k Key) GoString() string { return k.String() }

// Format writes the redacted String for every verb and flag, so that no
// fmt verb (%x included) prints key bytes.
func (k Key) Format(f fmt.State, _ rune) {
	io.WriteString(f, k.String())
}

// LogValue logs k as its redacted String.
func (k Key) LogValue() slog.Value {
	return slog.StringValue(k.String())
}
