package seal_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/keygate/keygate/internal/seal"
)

// envelopeOverhead is what Seal adds to the plaintext: version, key ID,
// nonce, wrapped key and tag, nonce and tag.
const envelopeOverhead = 1 + 8 + 12 + 32 + 16 + 12 + 16

func mustSealer(t testing.TB, k seal.Key) *seal.Sealer {
	t.Helper()
	s, err := seal.NewSealer(k)
	if err != nil {
		t.Fatalf("NewSealer: %v", err)
	}
	return s
}

func newSealer(t testing.TB) *seal.Sealer {
	t.Helper()
	k, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return mustSealer(t, k)
}

func mustSeal(t testing.TB, s *seal.Sealer, plaintext, aad []byte) []byte {
	t.Helper()
	sealed, err := s.Seal(plaintext, aad)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	return sealed
}

func TestSealOpenRoundTrip(t *testing.T) {
	s := newSealer(t)
	tests := []struct {
		name      string
		plaintext []byte
		aad       []byte
	}{
		{"empty", nil, []byte("vault=default;kind=secret;name=a;version=1")},
		{"one byte", []byte{0}, []byte("x")},
		{"1 KiB", bytes.Repeat([]byte("k"), 1024), []byte("vault=v;kind=secret;name=b;version=2")},
		{"1 MiB", bytes.Repeat([]byte{0xFF, 0}, 512*1024), []byte("big")},
		{"no aad", []byte("hello"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sealed := mustSeal(t, s, tt.plaintext, tt.aad)
			if got, want := len(sealed), len(tt.plaintext)+envelopeOverhead; got != want {
				t.Errorf("sealed length = %d, want %d", got, want)
			}
			if len(tt.plaintext) >= 8 && bytes.Contains(sealed, tt.plaintext[:8]) {
				t.Error("sealed output contains the plaintext")
			}
			got, err := s.Open(sealed, tt.aad)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !bytes.Equal(got, tt.plaintext) {
				t.Errorf("Open returned %d bytes that differ from the %d sealed", len(got), len(tt.plaintext))
			}
		})
	}
}

func TestSealIsRandomized(t *testing.T) {
	s := newSealer(t)
	a := mustSeal(t, s, []byte("same"), []byte("aad"))
	b := mustSeal(t, s, []byte("same"), []byte("aad"))
	if bytes.Equal(a, b) {
		t.Error("sealing the same plaintext twice gave equal envelopes")
	}
}

func TestOpenWithAnotherSealerOfTheSameKey(t *testing.T) {
	k := mustKey(t, testKeyBytes())
	sealed := mustSeal(t, mustSealer(t, k), []byte("v"), []byte("a"))
	got, err := mustSealer(t, mustKey(t, testKeyBytes())).Open(sealed, []byte("a"))
	if err != nil || string(got) != "v" {
		t.Errorf("Open with a new Sealer of the same key = %q, %v; want \"v\"", got, err)
	}
}

func TestOpenWrongAAD(t *testing.T) {
	s := newSealer(t)
	aad := []byte("vault=default;kind=secret;name=x;version=1")
	sealed := mustSeal(t, s, []byte("secret value"), aad)
	others := [][]byte{
		nil,
		[]byte("vault=default;kind=secret;name=x;version=2"),
		[]byte("vault=default;kind=secret;name=y;version=1"),
		append(bytes.Clone(aad), 0),
		aad[:len(aad)-1],
	}
	for _, other := range others {
		t.Run(string(other), func(t *testing.T) {
			_, err := s.Open(sealed, other)
			if !errors.Is(err, seal.ErrOpen) {
				t.Fatalf("Open with aad %q error = %v, want ErrOpen", other, err)
			}
			if errors.Is(err, seal.ErrWrongKey) {
				t.Errorf("Open with wrong aad error = %v, which claims a wrong key", err)
			}
		})
	}
}

// TestOpenTampered flips one bit in every byte of an envelope in turn.
func TestOpenTampered(t *testing.T) {
	s := newSealer(t)
	plaintext := []byte("correct horse battery staple")
	aad := []byte("a")
	sealed := mustSeal(t, s, plaintext, aad)
	regions := []struct {
		name       string
		start, end int
		wantMsg    string
	}{
		{"version", 0, 1, "version"},
		{"key ID", 1, 9, "another key"},
		{"key nonce", 9, 21, "data key does not authenticate"},
		{"wrapped key", 21, 69, "data key does not authenticate"},
		{"data nonce", 69, 81, "ciphertext does not authenticate"},
		{"ciphertext and tag", 81, len(sealed), "ciphertext does not authenticate"},
	}
	for _, r := range regions {
		t.Run(r.name, func(t *testing.T) {
			for i := r.start; i < r.end; i++ {
				bad := bytes.Clone(sealed)
				bad[i] ^= 0x01
				got, err := s.Open(bad, aad)
				if !errors.Is(err, seal.ErrOpen) {
					t.Fatalf("byte %d flipped: Open = %q, %v; want ErrOpen", i, got, err)
				}
				if !strings.Contains(err.Error(), r.wantMsg) {
					t.Errorf("byte %d flipped: error %q does not contain %q", i, err, r.wantMsg)
				}
				if strings.Contains(err.Error(), string(plaintext)) {
					t.Errorf("error %q contains the plaintext", err)
				}
			}
		})
	}
}

func TestOpenWrongKey(t *testing.T) {
	a, b := newSealer(t), newSealer(t)
	sealed := mustSeal(t, a, []byte("v"), []byte("aad"))
	_, err := b.Open(sealed, []byte("aad"))
	if !errors.Is(err, seal.ErrWrongKey) {
		t.Fatalf("Open under another key error = %v, want ErrWrongKey", err)
	}
	if !errors.Is(err, seal.ErrOpen) {
		t.Errorf("ErrWrongKey error %v does not wrap ErrOpen", err)
	}
	for _, id := range []string{a.KeyID(), b.KeyID()} {
		if !strings.Contains(err.Error(), id) {
			t.Errorf("error %q does not name key ID %s", err, id)
		}
	}
}

func TestOpenTruncated(t *testing.T) {
	s := newSealer(t)
	sealed := mustSeal(t, s, []byte("some secret value"), nil)
	for n := range len(sealed) {
		if _, err := s.Open(sealed[:n], nil); !errors.Is(err, seal.ErrOpen) {
			t.Fatalf("Open of the first %d of %d bytes: error %v, want ErrOpen", n, len(sealed), err)
		}
	}
	if _, err := s.Open(append(bytes.Clone(sealed), 0), nil); !errors.Is(err, seal.ErrOpen) {
		t.Errorf("Open with a byte appended: error %v, want ErrOpen", err)
	}
}

func TestNewSealerZeroKey(t *testing.T) {
	if _, err := seal.NewSealer(seal.Key{}); err == nil {
		t.Error("NewSealer(zero Key) succeeded")
	}
}

func TestDerive(t *testing.T) {
	parent := newSealer(t)
	backup, err := parent.Derive("backup")
	if err != nil {
		t.Fatalf("Derive: %v", err)
	}
	export, err := parent.Derive("export")
	if err != nil {
		t.Fatalf("Derive: %v", err)
	}
	again, err := parent.Derive("backup")
	if err != nil {
		t.Fatalf("Derive: %v", err)
	}

	sealed := mustSeal(t, backup, []byte("blob"), []byte("aad"))
	if got, err := again.Open(sealed, []byte("aad")); err != nil || string(got) != "blob" {
		t.Errorf("second Derive(backup).Open = %q, %v; want \"blob\"", got, err)
	}
	others := []struct {
		name string
		s    *seal.Sealer
	}{{"parent", parent}, {"export", export}}
	for _, o := range others {
		if _, err := o.s.Open(sealed, []byte("aad")); !errors.Is(err, seal.ErrWrongKey) {
			t.Errorf("%s opened a backup envelope: error %v, want ErrWrongKey", o.name, err)
		}
	}
	fromParent := mustSeal(t, parent, []byte("rec"), []byte("aad"))
	if _, err := backup.Open(fromParent, []byte("aad")); !errors.Is(err, seal.ErrWrongKey) {
		t.Errorf("backup sealer opened a parent envelope: error %v, want ErrWrongKey", err)
	}
	if backup.KeyID() == parent.KeyID() || backup.KeyID() == export.KeyID() {
		t.Errorf("derived key IDs collide: parent %s backup %s export %s",
			parent.KeyID(), backup.KeyID(), export.KeyID())
	}
	if _, err := parent.Derive(""); err == nil {
		t.Error("Derive(\"\") succeeded")
	}
}

func TestSealerConcurrentUse(t *testing.T) {
	s := newSealer(t)
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 32 {
		wg.Go(func() {
			aad := fmt.Appendf(nil, "name=%d", i)
			for j := range 50 {
				want := fmt.Appendf(nil, "value %d/%d", i, j)
				sealed, err := s.Seal(want, aad)
				if err != nil {
					errs <- err
					return
				}
				got, err := s.Open(sealed, aad)
				if err != nil || !bytes.Equal(got, want) {
					errs <- fmt.Errorf("goroutine %d: Open = %q, %v; want %q", i, got, err, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestSealerStringNamesOnlyKeyID(t *testing.T) {
	raw := testKeyBytes()
	s := mustSealer(t, mustKey(t, raw))
	for _, f := range []string{"%v", "%+v", "%s"} {
		out := fmt.Sprintf(f, s)
		assertRedacted(t, out, raw)
		if !strings.Contains(out, s.KeyID()) {
			t.Errorf("Sprintf(%q, sealer) = %q, want the key ID %s", f, out, s.KeyID())
		}
	}
	assertRedacted(t, fmt.Sprintf("%+v", *s), raw)
	assertRedacted(t, fmt.Sprintf("%#v", *s), raw)
}

func FuzzOpen(f *testing.F) {
	s := mustSealer(f, mustKey(f, testKeyBytes()))
	plaintext, aad := []byte("fuzz plaintext"), []byte("fuzz aad")
	sealed := mustSeal(f, s, plaintext, aad)
	f.Add(sealed)
	f.Add(sealed[:len(sealed)-1])
	f.Add(sealed[:9])
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Add(append([]byte{2}, sealed[1:]...))
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := s.Open(in, aad)
		if err != nil {
			if !errors.Is(err, seal.ErrOpen) {
				t.Fatalf("Open error %v does not wrap ErrOpen", err)
			}
			if got != nil {
				t.Fatalf("Open returned %d bytes with an error", len(got))
			}
			return
		}
		// Forging an envelope is infeasible, so only one that Seal made
		// opens. Under -fuzz each worker seals its own seed (the nonces
		// differ), so compare what it opens to, not the envelope.
		if !bytes.Equal(got, plaintext) {
			t.Fatalf("Open accepted an input that Seal did not produce: %x", in)
		}
	})
}

func BenchmarkSealOpen1KiB(b *testing.B) {
	s := newSealer(b)
	plaintext := bytes.Repeat([]byte("v"), 1024)
	aad := []byte("vault=default;kind=secret;name=bench;version=0123456789abcdef")
	sealed := mustSeal(b, s, plaintext, aad)

	b.Run("Seal", func(b *testing.B) {
		b.SetBytes(int64(len(plaintext)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Seal(plaintext, aad); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Open", func(b *testing.B) {
		b.SetBytes(int64(len(plaintext)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Open(sealed, aad); err != nil {
				b.Fatal(err)
			}
		}
	})
}
