package secureboot

import (
	"bytes"
	"debug/pe"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/basaltos/basalt/internal/testutil"
)

// The host's systemd-boot-efi (amd64): the stub and the loader the build signs.
const (
	hostStub   = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"
	hostSDBoot = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"
)

var (
	signersOnce sync.Once
	signers     [2]*Signer
)

// testSigners are two generated key pairs (RSA keygen is slow: made once).
func testSigners(t *testing.T) (*Signer, *Signer) {
	t.Helper()
	signersOnce.Do(func() {
		for i := range signers {
			s, err := Generate("basalt test db "+string(rune('A'+i)), time.Now())
			if err != nil {
				panic(err)
			}
			signers[i] = s
		}
	})
	return signers[0], signers[1]
}

func writeFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// sbverify runs Debian's sbverify against cert; it returns its output and
// whether it accepted the signature.
func sbverify(t *testing.T, file string, cert *Signer) (string, bool) {
	t.Helper()
	tool := testutil.NeedTool(t, "sbverify")
	cp := writeFile(t, "cert.pem", cert.CertPEM())
	out, err := exec.Command(tool, "--cert", cp, file).CombinedOutput()
	return string(out), err == nil
}

// fakeKernel is a stand-in for a bzImage: its setup header magic and an
// init_size bigger than the file, as real x86 kernels have.
func fakeKernel() []byte {
	k := bytes.Repeat([]byte("fake kernel "), 4000)
	copy(k[0x202:], "HdrS")
	binary.LittleEndian.PutUint32(k[0x260:], 1<<20)
	return k
}

func testUKI(t *testing.T) []byte {
	t.Helper()
	testutil.NeedFile(t, hostStub, "apt-get install systemd-boot-efi (make deps)")
	stub, err := os.ReadFile(hostStub)
	if err != nil {
		t.Fatal(err)
	}
	uki, err := UKI(stub, "NAME=basalt\n", "console=ttyS0 basalt.verity=00ff", []byte("fake initrd"), fakeKernel())
	if err != nil {
		t.Fatal(err)
	}
	return uki
}

func TestUKISections(t *testing.T) {
	uki := testUKI(t)
	f, err := pe.NewFile(bytes.NewReader(uki))
	if err != nil {
		t.Fatalf("debug/pe cannot read the UKI: %v", err)
	}
	want := map[string]string{".osrel": "NAME=basalt\n", ".cmdline": "console=ttyS0 basalt.verity=00ff", ".initrd": "fake initrd", ".linux": string(fakeKernel())}
	var prevEnd uint32
	for _, s := range f.Sections {
		if s.VirtualAddress < prevEnd {
			t.Errorf("section %s at %#x overlaps the one before (ends %#x)", s.Name, s.VirtualAddress, prevEnd)
		}
		prevEnd = s.VirtualAddress + s.VirtualSize
		w, ok := want[s.Name]
		if !ok {
			continue
		}
		delete(want, s.Name)
		data, err := SectionData(uki, s.Name)
		if s.Name == ".linux" { // padded to the file alignment: its virtual size is init_size
			data = data[:min(len(data), len(w))]
		}
		if err != nil || string(data) != w {
			t.Errorf("section %s: %d bytes, err %v; want %d bytes", s.Name, len(data), err, len(w))
		}
		if s.Name == ".linux" && s.VirtualSize < 1<<20 {
			t.Errorf(".linux virtual size %#x < the kernel's init_size", s.VirtualSize)
		}
	}
	if len(want) > 0 {
		t.Errorf("sections missing: %v", want)
	}
	if last := f.Sections[len(f.Sections)-1].Name; last != ".linux" {
		t.Errorf("last section %s, want .linux", last)
	}
	oh := f.OptionalHeader.(*pe.OptionalHeader64)
	if oh.SizeOfImage < prevEnd {
		t.Errorf("SizeOfImage %#x < end of the last section %#x", oh.SizeOfImage, prevEnd)
	}
}

// TestSignSbverify: sbverify accepts our signatures on a UKI and on
// systemd-boot with the signing cert, and refuses another cert and a
// modified image.
func TestSignSbverify(t *testing.T) {
	db, other := testSigners(t)
	testutil.NeedFile(t, hostSDBoot, "apt-get install systemd-boot-efi (make deps)")
	sdboot, err := os.ReadFile(hostSDBoot)
	if err != nil {
		t.Fatal(err)
	}
	for name, img := range map[string][]byte{"uki": testUKI(t), "systemd-boot": sdboot} {
		t.Run(name, func(t *testing.T) {
			signed, err := Sign(img, db)
			if err != nil {
				t.Fatal(err)
			}
			p := writeFile(t, name+".efi", signed)
			if out, ok := sbverify(t, p, db); !ok || !strings.Contains(out, "Signature verification OK") {
				t.Fatalf("sbverify refused our signature:\n%s", out)
			}
			if out, ok := sbverify(t, p, other); ok {
				t.Errorf("sbverify accepted another cert:\n%s", out)
			}
			bad := append([]byte(nil), signed...)
			bad[0x1000] ^= 1
			if out, ok := sbverify(t, writeFile(t, "bad.efi", bad), db); ok {
				t.Errorf("sbverify accepted a modified image:\n%s", out)
			}
			again, err := Sign(img, db)
			if err != nil || !bytes.Equal(again, signed) {
				t.Errorf("signing twice gave different bytes (err %v): not reproducible", err)
			}
			// Re-signing replaces the signature: one, by the new signer.
			resigned, err := Sign(signed, other)
			if err != nil {
				t.Fatal(err)
			}
			sigs, err := Signatures(resigned)
			if err != nil || len(sigs) != 1 {
				t.Fatalf("re-signed: %d signatures, err %v; want 1", len(sigs), err)
			}
			certs, err := Certificates(sigs[0])
			if err != nil || len(certs) != 1 || !certs[0].Equal(other.Cert) {
				t.Errorf("re-signed image's certificates %v (err %v): want the new signer's", certs, err)
			}
			if out, ok := sbverify(t, writeFile(t, "re.efi", resigned), other); !ok {
				t.Errorf("sbverify refused the re-signed image:\n%s", out)
			}
			h1, _ := ImageHash(img)
			h2, _ := ImageHash(resigned)
			if len(img)%8 == 0 && !bytes.Equal(h1, h2) {
				t.Errorf("image hash changed by signing")
			}
		})
	}
	if sigs, err := Signatures(sdboot); err != nil || len(sigs) != 0 {
		t.Errorf("unsigned systemd-boot: %d signatures, err %v", len(sigs), err)
	}
}

func TestParseSigner(t *testing.T) {
	a, b := testSigners(t)
	ka, _ := a.KeyPEM()
	if _, err := ParseSigner(ka, a.CertPEM()); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name     string
		key, crt []byte
		want     string
	}{
		{"mismatch", ka, b.CertPEM(), "does not belong"},
		{"no key", []byte("x"), a.CertPEM(), "key: no PEM"},
		{"cert as key", a.CertPEM(), a.CertPEM(), `key: PEM block "CERTIFICATE"`},
		{"key as cert", ka, ka, "cert: no PEM CERTIFICATE"},
	} {
		if _, err := ParseSigner(c.key, c.crt); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want %q", c.name, err, c.want)
		}
	}
}

// TestSignatureListSbsiglist: our EFI_SIGNATURE_LIST is byte-identical to
// sbsiglist's.
func TestSignatureListSbsiglist(t *testing.T) {
	tool := testutil.NeedTool(t, "sbsiglist")
	a, _ := testSigners(t)
	owner := GUID{0x12345678, 0x9abc, 0xdef0, [8]byte{1, 2, 3, 4, 5, 6, 7, 8}}
	der := writeFile(t, "cert.der", a.Cert.Raw)
	out := filepath.Join(t.TempDir(), "esl")
	if b, err := exec.Command(tool, "--owner", owner.String(), "--type", "x509", "--output", out, der).CombinedOutput(); err != nil {
		t.Fatalf("sbsiglist: %v\n%s", err, b)
	}
	want, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if got := SignatureList(a.Cert, owner); !bytes.Equal(got, want) {
		t.Errorf("signature list differs from sbsiglist's:\n got %x\nwant %x", got, want)
	}
}

// splitAuth splits an .auth file into its timestamp, PKCS#7 and data
// (test-only reader of the format).
func splitAuth(t *testing.T, b []byte) (stamp, p7, data []byte) {
	t.Helper()
	if len(b) < 40 {
		t.Fatalf(".auth too short: %d bytes", len(b))
	}
	n := int(binary.LittleEndian.Uint32(b[16:]))
	if binary.LittleEndian.Uint16(b[20:]) != winCertRevision || binary.LittleEndian.Uint16(b[22:]) != winCertEFIGUID ||
		!bytes.Equal(b[24:40], certPKCS7GUID.Bytes()) || 16+n > len(b) {
		t.Fatalf(".auth header %x is not EFI_VARIABLE_AUTHENTICATION_2 with PKCS#7", b[:40])
	}
	return b[:16], b[40 : 16+n], b[16+n:]
}

// TestAuthVar: our .auth has sbvarsign's layout, and openssl verifies its
// PKCS#7 over name, vendor, attributes, timestamp and data with the
// signer's certificate (and refuses another).
func TestAuthVar(t *testing.T) {
	sbvarsign := testutil.NeedTool(t, "sbvarsign")
	kek, other := testSigners(t)
	esl := SignatureList(other.Cert, GlobalVariable)
	ts := time.Date(2026, 12, 1, 12, 30, 45, 0, time.UTC)
	auth, err := AuthVar(DB, esl, ts, kek)
	if err != nil {
		t.Fatal(err)
	}
	stamp, _, data := splitAuth(t, auth)
	if !bytes.Equal(data, esl) {
		t.Fatal(".auth does not end with the signature list")
	}
	if !bytes.Equal(stamp, []byte{0xea, 0x07, 12, 1, 12, 30, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0}) {
		t.Errorf("timestamp %x", stamp)
	}

	// sbvarsign's output splits the same way.
	kp, _ := kek.KeyPEM()
	keyFile, certFile, eslFile := writeFile(t, "k.pem", kp), writeFile(t, "c.pem", kek.CertPEM()), writeFile(t, "esl", esl)
	ref := filepath.Join(t.TempDir(), "db.auth")
	if b, err := exec.Command(sbvarsign, "--key", keyFile, "--cert", certFile, "--attr", "NON_VOLATILE,BOOTSERVICE_ACCESS,RUNTIME_ACCESS",
		"--output", ref, "db", eslFile).CombinedOutput(); err != nil {
		t.Fatalf("sbvarsign: %v\n%s", err, b)
	}
	rb, err := os.ReadFile(ref)
	if err != nil {
		t.Fatal(err)
	}
	_, rp7, rdata := splitAuth(t, rb)
	if !bytes.Equal(rdata, esl) {
		t.Errorf("sbvarsign's .auth splits differently from ours")
	}
	// Both are a bare SignedData (no ContentInfo) with SHA-256 at byte 13,
	// where EDK2 checks for it (it refuses the variable otherwise).
	_, p7, _ := splitAuth(t, auth)
	for who, b := range map[string][]byte{"sbvarsign": rp7, "ours": p7} {
		if len(b) < 22 || b[0] != 0x30 || b[1] != 0x82 || !bytes.Equal(b[4:7], []byte{2, 1, 1}) || !bytes.Equal(b[13:22], []byte{0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01}) {
			t.Errorf("%s: .auth PKCS#7 starts %x: want a bare SignedData, version 1, SHA-256 at byte 13", who, b[:min(len(b), 24)])
		}
	}

	if err := verifyAuth(t, DB, auth, kek); err != nil {
		t.Errorf("openssl refused the .auth signature: %v", err)
	}
	if err := verifyAuth(t, DB, auth, other); err == nil {
		t.Errorf("openssl accepted the .auth signature with another cert")
	}
}

// verifyAuth checks an .auth file's PKCS#7 over name, vendor, attributes,
// timestamp and data with openssl against the certificate of s.
func verifyAuth(t *testing.T, v Var, auth []byte, s *Signer) error {
	t.Helper()
	openssl := testutil.NeedTool(t, "openssl")
	stamp, p7, data := splitAuth(t, auth)
	var msg []byte
	for _, r := range v.Name {
		msg = append(msg, byte(r), 0)
	}
	msg = append(msg, v.Vendor.Bytes()...)
	msg = binary.LittleEndian.AppendUint32(msg, authAttributes)
	msg = append(append(msg, stamp...), data...)
	out, err := exec.Command(openssl, "cms", "-verify", "-binary", "-inform", "DER", "-in", writeFile(t, "p7", contentInfo(p7)), "-content", writeFile(t, "msg", msg),
		"-CAfile", writeFile(t, "ca.pem", s.CertPEM()), "-purpose", "any", "-out", os.DevNull).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

// TestKeySet: PK and KEK are signed by PK, db by KEK; each .auth carries
// its own certificate's signature list; the keys and certs pair up.
func TestKeySet(t *testing.T) {
	files, err := KeySet("basalt test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]KeyFile{}
	for _, f := range files {
		got[f.Name] = f
	}
	signer := map[string]*Signer{}
	for _, n := range []string{"PK", "KEK", "db"} {
		s, err := ParseSigner(got[n+".key"].Data, got[n+".crt"].Data)
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		if !got[n+".key"].Secret || got[n+".crt"].Secret {
			t.Errorf("%s: key secret %v, cert secret %v", n, got[n+".key"].Secret, got[n+".crt"].Secret)
		}
		signer[n] = s
	}
	for _, c := range []struct {
		v  Var
		by string
	}{{PK, "PK"}, {KEK, "PK"}, {DB, "KEK"}} {
		auth := got[c.v.Name+".auth"].Data
		if _, _, data := splitAuth(t, auth); !bytes.Equal(data, got[c.v.Name+".esl"].Data) || !bytes.Contains(data, signer[c.v.Name].Cert.Raw) {
			t.Errorf("%s.auth does not carry %s's signature list", c.v.Name, c.v.Name)
		}
		if err := verifyAuth(t, c.v, auth, signer[c.by]); err != nil {
			t.Errorf("%s.auth not signed by %s: %v", c.v.Name, c.by, err)
		}
	}
	for _, n := range AuthFiles {
		if _, ok := got[n]; !ok {
			t.Errorf("no %s", n)
		}
	}
}

func TestParsePEErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "no MZ"},
		{"mz only", append([]byte("MZ"), make([]byte, 0x40)...), "no PE signature"},
	} {
		if _, err := ImageHash(c.b); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want %q", c.name, err, c.want)
		}
	}
}

// FuzzParsePE: no input makes the PE reader or the signature walk panic
// (the stub and the loader come from packages or a user's file).
func FuzzParsePE(f *testing.F) {
	if b, err := os.ReadFile(hostStub); err == nil {
		f.Add(b[:min(len(b), 4096)])
	}
	f.Add([]byte("MZ"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := ImageHash(b); err != nil {
			return
		}
		Signatures(b)
		SectionData(b, ".linux")
		AddSections(b, []Section{{".osrel", []byte("x")}})
	})
}
