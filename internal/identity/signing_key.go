package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/keygate/keygate/internal/store"
)

// signingKey is one ES256 token signing key.
type signingKey struct {
	kid     string // RFC 7638 thumbprint of the public key
	priv    *ecdsa.PrivateKey
	created time.Time

	// activates is when the key starts signing; until then it is only
	// published, so that every process on the store learns it first.
	// The zero time means from creation.
	activates time.Time
}

// activeFrom is when k signs from.
func (k *signingKey) activeFrom() time.Time {
	if k.activates.IsZero() {
		return k.created
	}
	return k.activates
}

// LogValue names the key by its kid only.
func (k *signingKey) LogValue() slog.Value { return slog.StringValue(k.kid) }

// String names the key by its kid only, so that no format verb prints the
// private key.
func (k *signingKey) String() string { return "signing key " + k.kid }

// keyRing is the authority's signing keys, oldest first. The newest key
// whose activation has come signs; all verify. Rotation (key_rotation.go)
// appends a key that activates later and retires keys whose tokens have
// all expired.
type keyRing []*signingKey

// active returns the key that signs new tokens at now: the newest one
// already active, or the oldest when none is (a clock set back).
func (r keyRing) active(now time.Time) *signingKey {
	for i := len(r) - 1; i >= 0; i-- {
		if !r[i].activeFrom().After(now) {
			return r[i]
		}
	}
	return r[0]
}

// find returns the key with the given kid, or nil.
func (r keyRing) find(kid string) *signingKey {
	for _, k := range r {
		if k.kid == kid {
			return k
		}
	}
	return nil
}

// generateSigningKey makes a new P-256 key.
func generateSigningKey(now time.Time) (*signingKey, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating signing key: %w", err)
	}
	kid, err := thumbprint(&priv.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("generating signing key: %w", err)
	}
	return &signingKey{kid: kid, priv: priv, created: now.UTC()}, nil
}

// jwk is a public key as a JSON Web Key (RFC 7517, 7518).
type jwk struct {
	KeyType   string `json:"kty"`
	Use       string `json:"use"`
	Algorithm string `json:"alg"`
	KeyID     string `json:"kid"`
	Curve     string `json:"crv"`
	X         string `json:"x"`
	Y         string `json:"y"`
}

// publicJWK returns the public half of k as a JWK.
func (k *signingKey) publicJWK() (jwk, error) {
	x, y, err := coordinates(&k.priv.PublicKey)
	if err != nil {
		return jwk{}, err
	}
	return jwk{
		KeyType: "EC", Use: "sig", Algorithm: "ES256", KeyID: k.kid,
		Curve: "P-256", X: x, Y: y,
	}, nil
}

// coordinates returns the base64url x and y of a P-256 public key, each
// the full 32 bytes as RFC 7518 requires.
func coordinates(pub *ecdsa.PublicKey) (x, y string, err error) {
	b, err := pub.Bytes() // 0x04 || X || Y
	if err != nil || len(b) != 65 {
		return "", "", errors.New("encoding public key: not a P-256 point")
	}
	enc := base64.RawURLEncoding
	return enc.EncodeToString(b[1:33]), enc.EncodeToString(b[33:]), nil
}

// thumbprint returns the RFC 7638 thumbprint of a P-256 public key: the
// base64url SHA-256 of its required JWK members, in lexicographic order
// and without whitespace.
func thumbprint(pub *ecdsa.PublicKey) (string, error) {
	x, y, err := coordinates(pub)
	if err != nil {
		return "", err
	}
	// x and y are base64url, which needs no JSON escaping.
	canon := `{"crv":"P-256","kty":"EC","x":"` + x + `","y":"` + y + `"}`
	sum := sha256.Sum256([]byte(canon))
	return base64.RawURLEncoding.EncodeToString(sum[:]), nil
}

// keyRecord is a signing key as stored: the private scalar sealed, bound
// to the kid.
type keyRecord struct {
	KID       string    `json:"kid"`
	Algorithm string    `json:"alg"`
	Created   time.Time `json:"created"`
	Activates time.Time `json:"activates,omitzero"`
	Sealed    []byte    `json:"sealedKey"`

	// index is the record's store key, set by scanKeyRecords.
	index string
}

// keyAAD binds a sealed key to its kid, so that a record cannot be passed
// off as another key's.
func keyAAD(kid string) []byte {
	return []byte("identity signing key" + kid)
}

// sealSigningKey returns the record that stores k.
func sealSigningKey(s Sealer, k *signingKey) (keyRecord, error) {
	raw, err := k.priv.Bytes()
	if err != nil {
		return keyRecord{}, fmt.Errorf("sealing signing key %s: %w", k.kid, err)
	}
	sealed, err := s.Seal(raw, keyAAD(k.kid))
	clear(raw)
	if err != nil {
		return keyRecord{}, fmt.Errorf("sealing signing key %s: %w", k.kid, err)
	}
	return keyRecord{KID: k.kid, Algorithm: "ES256", Created: k.created, Activates: k.activates, Sealed: sealed}, nil
}

// openSigningKey unseals a stored key and checks that it is the key its
// kid names.
func openSigningKey(s Sealer, rec keyRecord) (*signingKey, error) {
	if rec.Algorithm != "ES256" {
		return nil, fmt.Errorf("opening signing key %s: algorithm %q is not ES256", rec.KID, rec.Algorithm)
	}
	raw, err := s.Open(rec.Sealed, keyAAD(rec.KID))
	if err != nil {
		return nil, fmt.Errorf("opening signing key %s: %w", rec.KID, err)
	}
	priv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), raw)
	clear(raw)
	if err != nil {
		return nil, fmt.Errorf("opening signing key %s: not a P-256 key", rec.KID)
	}
	kid, err := thumbprint(&priv.PublicKey)
	if err != nil || kid != rec.KID {
		return nil, fmt.Errorf("opening signing key %s: key does not match its kid", rec.KID)
	}
	return &signingKey{kid: kid, priv: priv, created: rec.Created, activates: rec.Activates}, nil
}

// keyIndex is the store key of the n-th signing key (from 1). Fixed width
// keeps the store's byte order the order of creation.
func keyIndex(n int) string { return fmt.Sprintf("%010d", n) }

// loadOrPutKeys returns the stored signing keys, oldest first, storing
// candidate first if there are none.
func loadOrPutKeys(tx store.Tx, s Sealer, candidate keyRecord) (keyRing, error) {
	recs, err := scanKeyRecords(tx)
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		if err := putJSON(tx, bucketSigningKeys, keyIndex(1), candidate); err != nil {
			return nil, fmt.Errorf("storing signing key: %w", err)
		}
		recs = []keyRecord{candidate}
	}
	ring := make(keyRing, 0, len(recs))
	for _, rec := range recs {
		k, err := openSigningKey(s, rec)
		if err != nil {
			return nil, err
		}
		ring = append(ring, k)
	}
	return ring, nil
}

// scanKeyRecords reads the stored key records in order.
func scanKeyRecords(tx store.Tx) ([]keyRecord, error) {
	var (
		recs   []keyRecord
		decErr error
	)
	err := tx.Scan(bucketSigningKeys, "", "", func(key string, value []byte) bool {
		var rec keyRecord
		if err := json.Unmarshal(value, &rec); err != nil {
			decErr = fmt.Errorf("loading signing key %s: record is corrupt", key)
			return false
		}
		rec.index = key
		recs = append(recs, rec)
		return true
	})
	// A store may report a bucket never written to as not found.
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("loading signing keys: %w", err)
	}
	return recs, decErr
}
