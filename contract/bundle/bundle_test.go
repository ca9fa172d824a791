package bundle

import (
	"archive/tar"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
)

// testKey is a fixed key (seeded), so seeds and fuzz inputs stay valid.
func testKey(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

func sum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

var payloads = map[string][]byte{
	RootFS: bytes.Repeat([]byte("root"), 5000), Kernel: []byte("kernel"), Initrd: []byte("initrd"), "dtbs/x/y.dtb": []byte("dtb"),
}

func testManifest() Manifest {
	m := Manifest{Format: FormatVersion, Image: "demo", Version: "1.2.0", Board: "qemu-x86_64", Compat: "demo", Cmdline: "console=ttyS0 basalt.slot=${slot} ro", Epoch: 1700000000}
	for _, n := range []string{RootFS, Kernel, Initrd, "dtbs/x/y.dtb"} {
		k := n
		if strings.HasPrefix(n, DTBPrefix) {
			k = DTB
		}
		m.Payloads = append(m.Payloads, Payload{Name: n, Kind: k, Size: int64(len(payloads[n])), SHA256: sum(payloads[n])})
	}
	return m
}

func makeBundle(t testing.TB, m Manifest, k ed25519.PrivateKey) []byte {
	t.Helper()
	raw, err := MarshalManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	var sig []byte
	if k != nil {
		sig = Sign(raw, k)
	}
	var buf bytes.Buffer
	if err := Write(&buf, raw, sig, func(p Payload) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(payloads[p.Name])), nil
	}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func readAll(r *Reader) (map[string][]byte, error) {
	got := map[string][]byte{}
	for {
		p, pr, err := r.Next()
		if err == io.EOF {
			return got, nil
		}
		if err != nil {
			return got, err
		}
		b, err := io.ReadAll(pr)
		if err != nil {
			return got, err
		}
		got[p.Name] = b
	}
}

func TestRoundTrip(t *testing.T) {
	k := testKey(1)
	b := makeBundle(t, testManifest(), k)
	if !bytes.Equal(b, makeBundle(t, testManifest(), k)) {
		t.Error("two writes of the same bundle differ")
	}
	r, err := Open(bytes.NewReader(b), []ed25519.PublicKey{testKey(2).Public().(ed25519.PublicKey), k.Public().(ed25519.PublicKey)})
	if err != nil {
		t.Fatal(err)
	}
	if r.Manifest().Version != "1.2.0" || r.Manifest().Name() != "demo-1.2.0-qemu-x86_64.bundle" {
		t.Errorf("manifest %+v", r.Manifest())
	}
	got, err := readAll(r)
	if err != nil {
		t.Fatal(err)
	}
	for n, want := range payloads {
		if !bytes.Equal(got[n], want) {
			t.Errorf("payload %s differs", n)
		}
	}
}

func TestRefused(t *testing.T) {
	k := testKey(1)
	pub := []ed25519.PublicKey{k.Public().(ed25519.PublicKey)}
	good := makeBundle(t, testManifest(), k)
	flip := func(at int) []byte { b := bytes.Clone(good); b[at] ^= 1; return b }
	rootAt := bytes.Index(good, payloads[RootFS])
	manAt := bytes.Index(good, []byte(`"version"`))
	for name, tc := range map[string]struct {
		b       []byte
		keys    []ed25519.PublicKey
		open    bool // the failure comes at a payload, after Open
		wantErr error
	}{
		"unknown key":          {b: good, keys: []ed25519.PublicKey{testKey(3).Public().(ed25519.PublicKey)}, wantErr: ErrSignature},
		"no keys":              {b: good, wantErr: ErrSignature},
		"unsigned":             {b: makeBundle(t, testManifest(), nil), keys: pub, wantErr: ErrSignature},
		"flipped manifest":     {b: flip(manAt + 2), keys: pub, wantErr: ErrSignature},
		"flipped payload byte": {b: flip(rootAt + 100), keys: pub, open: true, wantErr: ErrHash},
		"truncated":            {b: good[:rootAt+10], keys: pub, open: true, wantErr: io.ErrUnexpectedEOF},
		"empty":                {b: nil, keys: pub, wantErr: io.ErrUnexpectedEOF},
	} {
		t.Run(name, func(t *testing.T) {
			r, err := Open(bytes.NewReader(tc.b), tc.keys)
			if tc.open {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				_, err = readAll(r)
			}
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("error %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestResign(t *testing.T) {
	unsigned := makeBundle(t, testManifest(), nil)
	k := testKey(4)
	if _, err := Open(bytes.NewReader(unsigned), []ed25519.PublicKey{k.Public().(ed25519.PublicKey)}); err == nil {
		t.Fatal("unsigned bundle opened")
	}
	raw, _, err := ReadHead(tar.NewReader(bytes.NewReader(unsigned)))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := Resign(&out, bytes.NewReader(unsigned), Sign(raw, k)); err != nil {
		t.Fatal(err)
	}
	r, err := Open(bytes.NewReader(out.Bytes()), []ed25519.PublicKey{k.Public().(ed25519.PublicKey)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readAll(r); err != nil {
		t.Fatal(err)
	}
}

func TestManifestCheck(t *testing.T) {
	for name, mod := range map[string]func(*Manifest){
		"format":        func(m *Manifest) { m.Format = 2 },
		"no board":      func(m *Manifest) { m.Board = "" },
		"slash image":   func(m *Manifest) { m.Image = "a/b" },
		"bad version":   func(m *Manifest) { m.Version = "v1" },
		"dup payload":   func(m *Manifest) { m.Payloads = append(m.Payloads, m.Payloads[0]) },
		"no rootfs":     func(m *Manifest) { m.Payloads = m.Payloads[1:] },
		"dtb escape":    func(m *Manifest) { m.Payloads[3].Name = "dtbs/../x" },
		"kind":          func(m *Manifest) { m.Payloads[1].Kind = "firmware" },
		"misnamed":      func(m *Manifest) { m.Payloads[1].Name = "vmlinuz" },
		"bad sha":       func(m *Manifest) { m.Payloads[0].SHA256 = "xyz" },
		"neg size":      func(m *Manifest) { m.Payloads[0].Size = -1 },
		"kernel verity": func(m *Manifest) { m.Payloads[1].Verity = &Verity{} },
	} {
		m := testManifest()
		mod(&m)
		if err := m.Check(); err == nil {
			t.Errorf("%s: Check passed", name)
		}
	}
	if _, err := ParseManifest([]byte(`{"format":1,"extra":1}`)); err == nil || !strings.Contains(err.Error(), "extra") {
		t.Errorf("unknown key: %v", err)
	}
}

// ukiManifest is testManifest of a Secure Boot image: uki-a and uki-b in
// place of kernel and initrd.
func ukiManifest() Manifest {
	m := testManifest()
	m.Payloads = m.Payloads[:1]
	for _, n := range []string{"uki-a", "uki-b"} {
		m.Payloads = append(m.Payloads, Payload{Name: n, Kind: UKI, Size: 3, SHA256: sum([]byte(n[4:] + "uk"))})
	}
	return m
}

// TestManifestCheckUKI: a bundle carries kernel+initrd or both slots' UKIs.
func TestManifestCheckUKI(t *testing.T) {
	if m := ukiManifest(); m.Check() != nil || !m.UKI() || testManifest().UKI() {
		t.Fatalf("UKI manifest: Check %v, UKI() %v; plain UKI() %v", m.Check(), m.UKI(), testManifest().UKI())
	}
	if UKIName("b") != "uki-b" {
		t.Errorf("UKIName(b) = %q", UKIName("b"))
	}
	for name, mod := range map[string]func(*Manifest){
		"one uki":        func(m *Manifest) { m.Payloads = m.Payloads[:2] },
		"uki of slot c":  func(m *Manifest) { m.Payloads[2].Name = "uki-c" },
		"uki and kernel": func(m *Manifest) { m.Payloads = append(m.Payloads, testManifest().Payloads[1:3]...) },
		"uki kind":       func(m *Manifest) { m.Payloads[1].Kind = Kernel },
	} {
		m := ukiManifest()
		mod(&m)
		if err := m.Check(); err == nil {
			t.Errorf("%s: Check passed", name)
		}
	}
	m := testManifest()
	m.Payloads = append(m.Payloads, ukiManifest().Payloads[1:]...)
	if err := m.Check(); err == nil || !strings.Contains(err.Error(), "beside") {
		t.Errorf("kernel, initrd and a UKI: %v", err)
	}
}

func TestCompareVersions(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"1.0.0", "1.0.0", 0}, {"1.0.1", "1.0.0", 1}, {"1.2", "1.10", -1}, {"2", "1.9.9", 1},
		{"1.0.0-rc.1", "1.0.0", -1}, {"1.0.0-rc.2", "1.0.0-rc.10", -1}, {"1.0.0-alpha", "1.0.0-1", 1}, {"1.0", "1.0.0", 0},
	} {
		got, err := CompareVersions(tc.a, tc.b)
		if err != nil || got != tc.want {
			t.Errorf("CompareVersions(%s, %s) = %d, %v; want %d", tc.a, tc.b, got, err, tc.want)
		}
	}
	if _, err := CompareVersions("x", "1"); err == nil {
		t.Error("CompareVersions(x) succeeded")
	}
}

func TestKeysRoundTrip(t *testing.T) {
	k := testKey(5)
	priv, err := MarshalPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParsePrivateKey(priv)
	if err != nil || !got.Equal(k) {
		t.Fatalf("private key: %v", err)
	}
	p1, _ := MarshalPublicKey(k.Public().(ed25519.PublicKey))
	p2, _ := MarshalPublicKey(testKey(6).Public().(ed25519.PublicKey))
	keys, err := ParsePublicKeys(append(p1, p2...))
	if err != nil || len(keys) != 2 || !keys[0].Equal(k.Public()) {
		t.Fatalf("public keys %v, %v", keys, err)
	}
	if _, err := ParsePublicKeys(priv); err == nil {
		t.Error("a private key parsed as public keys")
	}
	if _, err := ParsePublicKeys([]byte("junk")); err == nil {
		t.Error("junk parsed as public keys")
	}
}
