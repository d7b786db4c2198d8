package pki

import "testing"

// BenchmarkGenerateKey measures key generation per key type: the cost of
// a certificate creation or renewal that does not reuse its key, which
// the vault runs off the request path.
func BenchmarkGenerateKey(b *testing.B) {
	for _, spec := range []KeySpec{
		{Type: KeyTypeRSA, Size: 2048}, {Type: KeyTypeRSA, Size: 3072}, {Type: KeyTypeRSA, Size: 4096},
		{Type: KeyTypeEC, Curve: CurveP256}, {Type: KeyTypeEC, Curve: CurveP384}, {Type: KeyTypeEC, Curve: CurveP521},
	} {
		b.Run(spec.String(), func(b *testing.B) {
			for b.Loop() {
				if _, err := GenerateKey(spec); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPFX measures encoding and decoding the PFX of a certificate's
// secret (RSA 2048 with a chain of three).
func BenchmarkPFX(b *testing.B) {
	bundle, _ := testChain(b, KeySpec{Type: KeyTypeRSA, Size: 2048})
	pfx, err := bundle.EncodePFX()
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encode", func(b *testing.B) {
		for b.Loop() {
			bundle.EncodePFX()
		}
	})
	b.Run("decode", func(b *testing.B) {
		for b.Loop() {
			if _, err := DecodePFX(pfx, ""); err != nil {
				b.Fatal(err)
			}
		}
	})
}
