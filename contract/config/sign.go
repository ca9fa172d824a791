package config

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
)

// Config trust (the spec's configTrust: signed): the image bakes the
// public keys into TrustKeysFile; the device then merges a boot-partition
// or NoCloud source only when SigSuffix next to it holds a valid detached
// signature by one of them, and takes only HarmlessCmdlineKeys from the
// kernel command line (it lives on the same FAT).
const (
	// TrustKeysFile in the root holds the PEM ed25519 public keys that
	// config sources must be signed by; its absence means configTrust: any.
	TrustKeysFile = "/etc/basalt/config-keys.pub"
	// SigSuffix names a source's signature file: config.d/50-x.yaml.sig.
	SigSuffix = ".sig"
	// sigContext separates config signatures from other ed25519 uses of
	// the same key (bundles sign manifests without it).
	sigContext = "basalt config signature v1\n"
)

// HarmlessCmdlineKeys are the basalt.* command-line config keys accepted
// under configTrust: signed: naming the device, not who it trusts, talks
// to or runs.
var HarmlessCmdlineKeys = map[string]bool{"basalt.hostname": true, "basalt.fqdn": true, "basalt.timezone": true}

// Sign returns the signature file content for data: base64 of the
// ed25519 signature over the context string and data, and a newline.
func Sign(key ed25519.PrivateKey, data []byte) []byte {
	sig := ed25519.Sign(key, append([]byte(sigContext), data...))
	return []byte(base64.StdEncoding.EncodeToString(sig) + "\n")
}

// ErrUnsigned is a source without a signature file.
var ErrUnsigned = errors.New("not signed")

// Verify checks sigFile (a Sign output; nil when there is none) over data
// against keys.
func Verify(keys []ed25519.PublicKey, data, sigFile []byte) error {
	if sigFile == nil {
		return ErrUnsigned
	}
	sig, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(sigFile)))
	if err != nil || len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("signature is not %d base64 bytes", ed25519.SignatureSize)
	}
	msg := append([]byte(sigContext), data...)
	for _, k := range keys {
		if ed25519.Verify(k, msg, sig) {
			return nil
		}
	}
	return errors.New("bad signature: not by a key baked into the image")
}
