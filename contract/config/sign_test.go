package config

import (
	"crypto/ed25519"
	"errors"
	"testing"
)

func TestSignVerify(t *testing.T) {
	pub, priv := ed25519.NewKeyFromSeed(make([]byte, 32)).Public().(ed25519.PublicKey), ed25519.NewKeyFromSeed(make([]byte, 32))
	other := ed25519.NewKeyFromSeed([]byte("0123456789abcdef0123456789abcdef"))
	data := []byte("hostname: a\n")
	sig := Sign(priv, data)
	if err := Verify([]ed25519.PublicKey{other.Public().(ed25519.PublicKey), pub}, data, sig); err != nil {
		t.Errorf("good signature: %v", err)
	}
	if err := Verify([]ed25519.PublicKey{pub}, []byte("hostname: b\n"), sig); err == nil {
		t.Error("signature over other data accepted")
	}
	if err := Verify([]ed25519.PublicKey{pub}, data, Sign(other, data)); err == nil {
		t.Error("signature by another key accepted")
	}
	if err := Verify([]ed25519.PublicKey{pub}, data, nil); !errors.Is(err, ErrUnsigned) {
		t.Errorf("no signature: %v", err)
	}
	if err := Verify([]ed25519.PublicKey{pub}, data, []byte("!!")); err == nil {
		t.Error("garbage accepted")
	}
}

func FuzzVerify(f *testing.F) {
	priv := ed25519.NewKeyFromSeed(make([]byte, 32))
	f.Add([]byte("x"), Sign(priv, []byte("x")))
	f.Fuzz(func(t *testing.T, data, sig []byte) {
		Verify([]ed25519.PublicKey{priv.Public().(ed25519.PublicKey)}, data, sig)
	})
}
