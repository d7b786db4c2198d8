package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
)

// The envelope that Seal returns and Open reads, version 1:
//
//	offset  size  field
//	0       1     version (1)
//	1       8     master key ID: the first 8 bytes of HMAC-SHA256(key, "keygate key id")
//	9       12    nonce of the wrapped data key
//	21      48    wrapped data key: the 32-byte data key AES-256-GCM-sealed
//	              under the master key, with its 16-byte tag
//	69      12    nonce of the ciphertext
//	81      n+16  ciphertext: the plaintext AES-256-GCM-sealed under the data
//	              key, with its 16-byte tag
//
// Both seals take the same associated data: the 9 header bytes (version and
// key ID) followed by the caller's aad. The header being fixed-size, the
// concatenation is unambiguous. Binding the header means a record cannot be
// relabelled with another version or key ID; binding aad means a record
// cannot be moved to another identity (another secret, name or version).
//
// Nonces are random. The data key seals one message, so its nonce could be
// anything; the master key wraps one data key per record, which keeps a
// master key well inside the 2^32 messages that random 96-bit nonces allow
// for any vault this serves.
const (
	version1    = 1
	headerSize  = 1 + idSize
	gcmOverhead = 12 + 16 // nonce and tag, as cipher.NewGCMWithRandomNonce lays them out
	wrappedSize = gcmOverhead + KeySize
	bodyOffset  = headerSize + wrappedSize
	minSize     = bodyOffset + gcmOverhead
)

// ErrOpen is wrapped by every error of Open: the envelope is malformed,
// was altered, was sealed for other associated data or under another key.
var ErrOpen = errors.New("seal: opening sealed record failed")

// ErrWrongKey is wrapped by errors of Open when the envelope was sealed
// under another master key (or another derived key) than the Sealer's. It
// wraps ErrOpen.
var ErrWrongKey = fmt.Errorf("%w: sealed under another key", ErrOpen)

// Sealer seals and opens records under one master key. It is safe for
// concurrent use. Create it with NewSealer or Derive; the zero Sealer is not
// usable.
type Sealer struct {
	key  Key
	id   [idSize]byte
	wrap cipher.AEAD // the master key, wrapping data keys
}

// NewSealer returns a Sealer for k. It fails only for the zero Key.
func NewSealer(k Key) (*Sealer, error) {
	if !k.isSet() {
		return nil, errors.New("creating sealer: key is unset")
	}
	wrap, err := newAEAD(k.material()[:])
	if err != nil {
		return nil, fmt.Errorf("creating sealer: %w", err)
	}
	return &Sealer{key: k, id: k.id(), wrap: wrap}, nil
}

// newAEAD returns AES-256-GCM under key, with random nonces that Seal
// prepends to its output and Open reads from its input.
func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCMWithRandomNonce(block)
}

// KeyID returns the ID of the Sealer's key (see Key.ID).
func (s *Sealer) KeyID() string {
	return hex.EncodeToString(s.id[:])
}

// String names the Sealer by its key ID only.
func (s *Sealer) String() string {
	return "seal.Sealer(key id " + s.KeyID() + ")"
}

// Seal encrypts plaintext under a fresh data key and returns the envelope
// described above. aad is the record's identity (for example
// "vault=default;kind=secret;name=x;version=y"); it is not stored in the
// envelope, and Open must be given the same aad.
func (s *Sealer) Seal(plaintext, aad []byte) ([]byte, error) {
	var dataKey [KeySize]byte
	if _, err := rand.Read(dataKey[:]); err != nil {
		return nil, fmt.Errorf("sealing record: %w", err)
	}
	data, err := newAEAD(dataKey[:])
	if err != nil {
		return nil, fmt.Errorf("sealing record: %w", err)
	}

	out := make([]byte, 0, minSize+len(plaintext))
	out = append(out, version1)
	out = append(out, s.id[:]...)
	ad := associatedData(out[:headerSize], aad)
	out = s.wrap.Seal(out, nil, dataKey[:], ad)
	out = data.Seal(out, nil, plaintext, ad)
	return out, nil
}

// Open checks and decrypts an envelope made by Seal with the same key and
// aad. Every failure wraps ErrOpen; an envelope sealed under another key
// also wraps ErrWrongKey. Errors name the key IDs, never key bytes or
// plaintext.
func (s *Sealer) Open(sealed, aad []byte) ([]byte, error) {
	if err := s.checkHeader(sealed); err != nil {
		return nil, err
	}
	ad := associatedData(sealed[:headerSize], aad)

	dataKey, err := s.wrap.Open(nil, nil, sealed[headerSize:bodyOffset], ad)
	if err != nil {
		return nil, fmt.Errorf("%w: data key does not authenticate: the record was altered or sealed for other data", ErrOpen)
	}
	data, err := newAEAD(dataKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrOpen, err)
	}

	plaintext, err := data.Open(nil, nil, sealed[bodyOffset:], ad)
	if err != nil {
		return nil, fmt.Errorf("%w: ciphertext does not authenticate: the record was altered", ErrOpen)
	}
	return plaintext, nil
}

// checkHeader checks the envelope's size, version and key ID.
func (s *Sealer) checkHeader(sealed []byte) error {
	if len(sealed) < minSize {
		return fmt.Errorf("%w: envelope is %d bytes, want at least %d", ErrOpen, len(sealed), minSize)
	}
	if v := sealed[0]; v != version1 {
		return fmt.Errorf("%w: envelope version is %d, want %d", ErrOpen, v, version1)
	}
	// The ID is public, so a plain comparison would do; constant time
	// costs nothing here.
	if id := sealed[1:headerSize]; subtle.ConstantTimeCompare(id, s.id[:]) != 1 {
		return fmt.Errorf("%w (record key id %x, this key id %x)", ErrWrongKey, id, s.id)
	}
	return nil
}

// associatedData returns header followed by aad, in a new slice.
func associatedData(header, aad []byte) []byte {
	ad := make([]byte, 0, len(header)+len(aad))
	ad = append(ad, header...)
	return append(ad, aad...)
}

// Derive returns a Sealer whose key is derived from s's key for one
// purpose (HKDF-SHA256, the purpose as info, no salt), for example
// "backup". What a derived Sealer seals opens neither with s nor with a
// Sealer derived for another purpose, and fails there with ErrWrongKey.
// Deriving the same purpose twice gives the same key.
func (s *Sealer) Derive(purpose string) (*Sealer, error) {
	if purpose == "" {
		return nil, errors.New("deriving sealer: purpose is empty")
	}
	sub, err := hkdf.Key(sha256.New, s.key.material()[:], nil, purpose, KeySize)
	if err != nil {
		return nil, fmt.Errorf("deriving sealer for %q: %w", purpose, err)
	}
	k, err := NewKey(sub)
	if err != nil {
		return nil, fmt.Errorf("deriving sealer for %q: %w", purpose, err)
	}
	return NewSealer(k)
}
