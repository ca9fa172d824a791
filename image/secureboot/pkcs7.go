package secureboot

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"sort"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Signer is an RSA key and its X.509 certificate (Secure Boot firmware
// verifies RSA-2048 everywhere; other key types are refused).
type Signer struct {
	Key  *rsa.PrivateKey
	Cert *x509.Certificate
}

// LoadSigner reads a PEM private key (PKCS#8 or PKCS#1) and a PEM
// certificate and checks that they belong together.
func LoadSigner(keyFile, certFile string) (*Signer, error) {
	kb, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, err
	}
	cb, err := os.ReadFile(certFile)
	if err != nil {
		return nil, err
	}
	return ParseSigner(kb, cb)
}

// ParseSigner is LoadSigner on bytes; errors say which of the two is wrong.
func ParseSigner(keyPEM, certPEM []byte) (*Signer, error) {
	kblk, _ := pem.Decode(keyPEM)
	if kblk == nil {
		return nil, errors.New("key: no PEM block")
	}
	var key any
	var err error
	switch kblk.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(kblk.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(kblk.Bytes)
	default:
		return nil, fmt.Errorf("key: PEM block %q: want PRIVATE KEY or RSA PRIVATE KEY", kblk.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	rk, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key: %T: Secure Boot needs an RSA key", key)
	}
	cblk, _ := pem.Decode(certPEM)
	if cblk == nil || cblk.Type != "CERTIFICATE" {
		return nil, errors.New("cert: no PEM CERTIFICATE block")
	}
	cert, err := x509.ParseCertificate(cblk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("cert: %w", err)
	}
	if pk, ok := cert.PublicKey.(*rsa.PublicKey); !ok || !pk.Equal(&rk.PublicKey) {
		return nil, errors.New("cert does not belong to the key (public keys differ)")
	}
	return &Signer{Key: rk, Cert: cert}, nil
}

// Object identifiers of PKCS#7 and Authenticode.
var (
	oidData           = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidSignedData     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidContentType    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	oidMessageDigest  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
	oidRSAEncryption  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidSHA256         = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSpcIndirect    = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 4}
	oidSpcPEImageData = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 15}
	oidSpcOpusInfo    = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 12}
	oidSpcStatement   = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 11}
	oidSpcIndividual  = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 21}
)

func algID(b *cryptobyte.Builder, oid asn1.ObjectIdentifier) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		b.AddASN1NULL()
	})
}

// spcIndirectData is SpcIndirectDataContent for a PE image hash, the
// encoding sbsign and signtool write ("<<<Obsolete>>>" as the file link).
func spcIndirectData(digest []byte) []byte {
	var obsolete []byte
	for _, r := range "<<<Obsolete>>>" {
		obsolete = append(obsolete, 0, byte(r))
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oidSpcPEImageData)
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // SpcPeImageData
				b.AddASN1BitString(nil) // flags
				b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.Tag(2).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { // SpcLink file
						b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(obsolete) })
					})
				})
			})
		})
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // DigestInfo
			algID(b, oidSHA256)
			b.AddASN1OctetString(digest)
		})
	})
	return b.BytesOrPanic()
}

// authenticode is the PKCS#7 ContentInfo of an Authenticode signature of
// a PE image with the given image hash.
func (s *Signer) authenticode(imageHash []byte) ([]byte, error) {
	idc := spcIndirectData(imageHash)
	// messageDigest covers the content's value octets, not its SEQUENCE
	// header (Authenticode spec; sbverify and the firmware check it so).
	in := cryptobyte.String(idc)
	var body cryptobyte.String
	if !in.ReadASN1(&body, cbasn1.SEQUENCE) {
		return nil, errors.New("SpcIndirectDataContent encoding")
	}
	contentDigest := sha256.Sum256(body)
	attrs := [][]byte{
		attribute(oidContentType, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oidSpcIndirect) }),
		attribute(oidMessageDigest, func(b *cryptobyte.Builder) { b.AddASN1OctetString(contentDigest[:]) }),
		attribute(oidSpcOpusInfo, func(b *cryptobyte.Builder) { b.AddASN1(cbasn1.SEQUENCE, func(*cryptobyte.Builder) {}) }),
		attribute(oidSpcStatement, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oidSpcIndividual) })
		}),
	}
	// DER: a SET OF is sorted by its members' encodings.
	sort.Slice(attrs, func(i, j int) bool { return bytes.Compare(attrs[i], attrs[j]) < 0 })
	var set cryptobyte.Builder
	set.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
		for _, a := range attrs {
			b.AddBytes(a)
		}
	})
	signedAttrs := set.BytesOrPanic()
	sig, err := s.sign(signedAttrs)
	if err != nil {
		return nil, err
	}
	return contentInfo(s.signedData(oidSpcIndirect, idc, signedAttrs[2+lenLen(signedAttrs):], sig)), nil
}

// lenLen is the number of extra length octets of a DER header at b.
func lenLen(b []byte) int {
	if b[1] < 0x80 {
		return 0
	}
	return int(b[1] & 0x7f)
}

func attribute(oid asn1.ObjectIdentifier, value func(*cryptobyte.Builder)) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		b.AddASN1(cbasn1.SET, value)
	})
	return b.BytesOrPanic()
}

// sign is RSA PKCS#1 v1.5 over SHA-256 of msg (deterministic).
func (s *Signer) sign(msg []byte) ([]byte, error) {
	d := sha256.Sum256(msg)
	return rsa.SignPKCS1v15(rand.Reader, s.Key, crypto.SHA256, d[:])
}

// detached is a PKCS#7 SignedData over data (content type data, the
// content not included, no signed attributes), bare: not wrapped in a
// ContentInfo. That is the signature format of EFI_VARIABLE_AUTHENTICATION_2
// (sbvarsign's and efitools' output): EDK2 refuses a ContentInfo there,
// as it looks for the SHA-256 OID at byte 13 of the SignedData.
func (s *Signer) detached(data []byte) ([]byte, error) {
	sig, err := s.sign(data)
	if err != nil {
		return nil, err
	}
	return s.signedData(oidData, nil, nil, sig), nil
}

// contentInfo wraps a SignedData in ContentInfo{signedData}, the form of an
// Authenticode signature in a PE certificate table.
func contentInfo(signedData []byte) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oidSignedData)
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(signedData) })
	})
	return b.BytesOrPanic()
}

// signedData is a SignedData with one signer (s) and its certificate.
// content nil: detached. attrs: the signed attributes' SET contents (nil:
// none).
func (s *Signer) signedData(ctype asn1.ObjectIdentifier, content, attrs, sig []byte) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(1)
		b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { algID(b, oidSHA256) })
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(ctype)
			if content != nil {
				b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(content) })
			}
		})
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(s.Cert.Raw) })
		b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // SignerInfo
				b.AddASN1Int64(1)
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // IssuerAndSerialNumber
					b.AddBytes(s.Cert.RawIssuer)
					b.AddASN1BigInt(s.Cert.SerialNumber)
				})
				algID(b, oidSHA256)
				if attrs != nil {
					b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(attrs) })
				}
				algID(b, oidRSAEncryption)
				b.AddASN1OctetString(sig)
			})
		})
	})
	return b.BytesOrPanic()
}

// Certificates returns the certificates a PKCS#7 SignedData carries (for
// `basalt inspect`: who signed a UKI). It parses host-side files only.
func Certificates(p7 []byte) ([]*x509.Certificate, error) {
	in := cryptobyte.String(p7)
	var ci, sd, seq cryptobyte.String
	var oid asn1.ObjectIdentifier
	if !in.ReadASN1(&ci, cbasn1.SEQUENCE) || !ci.ReadASN1ObjectIdentifier(&oid) || !oid.Equal(oidSignedData) ||
		!ci.ReadASN1(&sd, cbasn1.Tag(0).Constructed().ContextSpecific()) || !sd.ReadASN1(&seq, cbasn1.SEQUENCE) {
		return nil, errors.New("not a PKCS#7 SignedData")
	}
	var version int64
	var skip, certs cryptobyte.String
	if !seq.ReadASN1Integer(&version) || !seq.ReadASN1(&skip, cbasn1.SET) || !seq.ReadASN1(&skip, cbasn1.SEQUENCE) {
		return nil, errors.New("PKCS#7 SignedData: bad header")
	}
	var present bool
	if !seq.ReadOptionalASN1(&certs, &present, cbasn1.Tag(0).Constructed().ContextSpecific()) {
		return nil, errors.New("PKCS#7 SignedData: bad certificates")
	}
	var out []*x509.Certificate
	for !certs.Empty() {
		var c cryptobyte.String
		if !certs.ReadASN1Element(&c, cbasn1.SEQUENCE) {
			return nil, errors.New("PKCS#7 SignedData: bad certificate")
		}
		cert, err := x509.ParseCertificate(c)
		if err != nil {
			return nil, err
		}
		out = append(out, cert)
	}
	return out, nil
}
