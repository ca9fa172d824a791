package update

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/contract/ab"
	"github.com/basaltos/basalt/contract/bundle"
	"github.com/basaltos/basalt/contract/config"
	"github.com/basaltos/basalt/initsys/say"
)

var key = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))

type fakeDevice struct {
	boot, dir string
	u         *Updater
	root      map[contract.Slot]string
	bcp       string
	console   bytes.Buffer
}

// newFake makes a device running slot a of version 1.0.0 with mechanism
// mech: the boot partition is a directory, the root slots are files (fakes:
// no block devices or FAT mounts in unit tests; the QEMU tests have both).
func newFake(t testing.TB, mech string) *fakeDevice {
	t.Helper()
	f := &fakeDevice{dir: t.TempDir(), root: map[contract.Slot]string{}}
	f.boot = filepath.Join(f.dir, "boot")
	m, _ := ab.For(mech)
	for _, x := range m.Initial(ab.Entry{Slot: "a", Title: "demo 1.0.0", Cmdline: "basalt.slot=${slot}"}) {
		ab.Dir(f.boot).WriteFile(x.Path, x.Data)
	}
	ab.Dir(f.boot).WriteFile("a/version", []byte("1.0.0\n"))
	ab.Dir(f.boot).WriteFile("a/vmlinuz", []byte("old kernel"))
	for _, s := range []contract.Slot{"a", "b"} {
		f.root[s] = filepath.Join(f.dir, "root-"+string(s))
		os.WriteFile(f.root[s], bytes.Repeat([]byte{byte(s[0])}, 1<<20), 0o644)
	}
	// The update's lines go through the init's one voice: read them here.
	restore := say.Use(say.New(&f.console, ""))
	t.Cleanup(restore)
	f.restart(t, mech, "a", "1.0.0")
	return f
}

// restart is a reboot into slot with version running.
func (f *fakeDevice) restart(t testing.TB, mech string, slot contract.Slot, version string) {
	t.Helper()
	u, err := New(Device{
		Release: map[string]string{"VERSION": version, "BOARD": "qemu-x86_64", ab.ReleaseKey: mech, bundle.CompatKey: "demo"},
		Booted:  slot, RootDev: f.root,
		MountBoot:     func() (string, func() error, error) { return f.boot, func() error { return nil }, nil },
		BootCountPath: func() string { return f.bcp },
		Keys:          []ed25519.PublicKey{key.Public().(ed25519.PublicKey)},
		StateFile:     filepath.Join(f.dir, "data", "update.json"),
	})
	if err != nil {
		t.Fatal(err)
	}
	f.u = u
}

func sum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

var rootfs = bytes.Repeat([]byte("new root "), 50000)

// makeBundle writes a bundle; mod changes the manifest (after hashing),
// k signs it (nil: unsigned).
func makeBundle(t testing.TB, version string, mod func(*bundle.Manifest), k ed25519.PrivateKey) string {
	t.Helper()
	pl := map[string][]byte{bundle.RootFS: rootfs, bundle.Kernel: []byte("new kernel " + version), bundle.Initrd: []byte("new initrd"),
		bundle.UKIName("a"): fakeUKI("a", version), bundle.UKIName("b"): fakeUKI("b", version)}
	m := bundle.Manifest{Format: 1, Image: "demo", Version: version, Board: "qemu-x86_64", Compat: "demo", Cmdline: "console=ttyS0 basalt.slot=${slot}"}
	for _, n := range []string{bundle.RootFS, bundle.Kernel, bundle.Initrd} {
		m.Payloads = append(m.Payloads, bundle.Payload{Name: n, Kind: n, Size: int64(len(pl[n])), SHA256: sum(pl[n])})
	}
	if mod != nil {
		mod(&m)
	}
	raw, err := bundle.MarshalManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	var sig []byte
	if k != nil {
		sig = bundle.Sign(raw, k)
	}
	var buf bytes.Buffer
	if err := bundle.Write(&buf, raw, sig, func(p bundle.Payload) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(pl[p.Name])), nil }); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "b.bundle")
	os.WriteFile(p, buf.Bytes(), 0o644)
	return p
}

// snapshot hashes the boot dir and both root slots.
func (f *fakeDevice) snapshot(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(f.boot, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			out[p] = sum(b)
		}
		return err
	})
	for _, p := range f.root {
		b, _ := os.ReadFile(p)
		out[p] = sum(b)
	}
	return out
}

func TestApplyTrialCommit(t *testing.T) {
	for _, mech := range []string{ab.BLSName, ab.UBootName} {
		t.Run(mech, func(t *testing.T) {
			f := newFake(t, mech)
			m, err := f.u.Apply(context.Background(), makeBundle(t, "1.1.0", nil, key), Options{Tries: 2})
			if err != nil {
				t.Fatalf("%v\n%s", err, f.console.String())
			}
			if m.Version != "1.1.0" || f.u.Status().Phase != Written {
				t.Errorf("after apply: %v %+v", m.Version, f.u.Status())
			}
			got, _ := os.ReadFile(f.root["b"])
			if !bytes.HasPrefix(got, rootfs) {
				t.Error("slot b does not hold the new root")
			}
			if k, _ := os.ReadFile(filepath.Join(f.boot, "b/vmlinuz")); string(k) != "new kernel 1.1.0" {
				t.Errorf("b/vmlinuz = %q", k)
			}
			if !strings.Contains(f.u.Status().AB, "trial b (2 tries left)") {
				t.Errorf("A/B state %q", f.u.Status().AB)
			}
			// Reboot into b on trial.
			if mech == ab.BLSName {
				os.Rename(filepath.Join(f.boot, "loader/entries/basalt-b+2-0.conf"), filepath.Join(f.boot, "loader/entries/basalt-b+1-1.conf"))
				f.bcp = `\loader\entries\basalt-b+1-1.conf`
			} else {
				ab.Dir(f.boot).WriteFile(contract.BootStateFile, ab.StateText("a", "b", 1))
			}
			f.restart(t, mech, "b", "1.1.0")
			if err := f.u.AfterBoot(context.Background(), func() (bool, string) { return true, "" }, GateOptions{Timeout: 5 * time.Second, Poll: time.Millisecond}, func() { t.Error("rebooted") }); err != nil {
				t.Fatal(err)
			}
			for range 500 {
				if f.u.Status().Phase == Committed {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			if st := f.u.Status(); st.Phase != Committed || st.AB != "committed b" {
				t.Fatalf("status %+v\n%s", st, f.console.String())
			}
			// The next boot is still b, committed.
			f.bcp = ""
			f.restart(t, mech, "b", "1.1.0")
			f.u.AfterBoot(context.Background(), nil, GateOptions{}, nil)
			if st := f.u.Status(); st.Phase != Committed || st.AB != "committed b" {
				t.Errorf("next boot %+v", st)
			}
		})
	}
}

func TestApplyRefusedBeforeAnyWrite(t *testing.T) {
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{8}, 32))
	for name, tc := range map[string]struct {
		bundle func(*testing.T) string
		want   string
	}{
		"bad signature": {func(t *testing.T) string {
			p := makeBundle(t, "1.1.0", nil, key)
			b, _ := os.ReadFile(p)
			i := bytes.Index(b, []byte(`"1.1.0"`))
			b[i+1] = '9' // the manifest now says 9.1.0: the signature no longer matches
			os.WriteFile(p, b, 0o644)
			return p
		}, "signature does not verify"},
		"unknown key": {func(t *testing.T) string { return makeBundle(t, "1.1.0", nil, other) }, "signature does not verify"},
		"unsigned":    {func(t *testing.T) string { return makeBundle(t, "1.1.0", nil, nil) }, "not signed"},
		"wrong board": {func(t *testing.T) string {
			return makeBundle(t, "1.1.0", func(m *bundle.Manifest) { m.Board = "qemu-armv7" }, key)
		}, "for board qemu-armv7"},
		"wrong compat": {func(t *testing.T) string {
			return makeBundle(t, "1.1.0", func(m *bundle.Manifest) { m.Compat = "other" }, key)
		}, "compat"},
		"lower version": {func(t *testing.T) string { return makeBundle(t, "0.9.0", nil, key) }, "lower than the running"},
		"same version":  {func(t *testing.T) string { return makeBundle(t, "1.0.0", nil, key) }, "running version"},
		"downgrade not allowed by device": {func(t *testing.T) string {
			return makeBundle(t, "0.9.0", func(m *bundle.Manifest) { m.AllowDowngrade = true }, key)
		}, "lower than the running"},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFake(t, ab.BLSName)
			before := f.snapshot(t)
			_, err := f.u.Apply(context.Background(), tc.bundle(t), Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrRefused) {
				t.Fatalf("error %v, want a refusal with %q", err, tc.want)
			}
			after := f.snapshot(t)
			for p, h := range before {
				if after[p] != h {
					t.Errorf("%s changed", p)
				}
			}
			if len(after) != len(before) {
				t.Errorf("files %d -> %d", len(before), len(after))
			}
			if st := f.u.Status(); st.Phase != Failed || !strings.Contains(st.Reason, tc.want) {
				t.Errorf("status %+v", st)
			}
		})
	}
	t.Run("downgrade allowed by both", func(t *testing.T) {
		f := newFake(t, ab.UBootName)
		if _, err := f.u.Apply(context.Background(), makeBundle(t, "0.9.0", func(m *bundle.Manifest) { m.AllowDowngrade = true }, key), Options{AllowDowngrade: true}); err != nil {
			t.Fatal(err)
		}
	})
}

// A payload byte flipped after signing is found when the payload's hash is
// compared at its end, in the one streaming pass: the rootfs was streamed
// into slot b, but b is not armed, its boot files and the whole boot
// partition are untouched, and the bundle counts as refused.
func TestApplyFlippedPayloadByte(t *testing.T) {
	for name, at := range map[string]func(b []byte) int{
		"rootfs": func(b []byte) int { return bytes.Index(b, rootfs[:100]) + len(rootfs) - 10 },
		"initrd": func(b []byte) int { return bytes.Index(b, []byte("new initrd")) + 3 },
	} {
		t.Run(name, func(t *testing.T) {
			f := newFake(t, ab.BLSName)
			p := makeBundle(t, "1.1.0", nil, key)
			b, _ := os.ReadFile(p)
			b[at(b)] ^= 0x40
			os.WriteFile(p, b, 0o644)
			before := f.snapshot(t)
			_, err := f.u.Apply(context.Background(), p, Options{})
			if !errors.Is(err, ErrRefused) || !errors.Is(err, bundle.ErrHash) || !strings.Contains(err.Error(), "stays unarmed") {
				t.Fatalf("error %v, want a refusal for the payload's hash", err)
			}
			after := f.snapshot(t)
			for p, h := range before {
				if after[p] != h && p != f.root["b"] {
					t.Errorf("%s changed", p)
				}
			}
			if len(after) != len(before) {
				t.Errorf("files %d -> %d", len(before), len(after))
			}
			if st := f.u.Status(); st.Phase != Failed || strings.Contains(st.AB, "trial") {
				t.Errorf("status %+v", st)
			}
		})
	}
}

// An http(s) bundle is downloaded once: a transfer broken in the rootfs
// resumes with a Range request (If-Range: the ETag) and the apply goes on.
func TestApplyURLOneDownload(t *testing.T) {
	f := newFake(t, ab.BLSName)
	b, _ := os.ReadFile(makeBundle(t, "1.1.0", nil, key))
	var full, ranged int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		if r.Header.Get("Range") == "" {
			full++
			// Cut the first transfer in the middle of the rootfs.
			w.Header().Set("Content-Length", strconv.Itoa(len(b)))
			w.WriteHeader(http.StatusOK)
			w.Write(b[:len(b)/2])
			panic(http.ErrAbortHandler)
		}
		ranged++
		http.ServeContent(w, r, "b.bundle", time.Time{}, bytes.NewReader(b))
	}))
	defer srv.Close()
	if _, err := f.u.Apply(context.Background(), srv.URL+"/b.bundle", Options{}); err != nil {
		t.Fatalf("%v\n%s", err, f.console.String())
	}
	if full != 1 || ranged != 1 {
		t.Errorf("%d full and %d ranged GETs, want one of each", full, ranged)
	}
	if got, _ := os.ReadFile(f.root["b"]); !bytes.HasPrefix(got, rootfs) {
		t.Error("slot b does not hold the new root")
	}
	if !strings.Contains(f.console.String(), "update: downloading 50%") {
		t.Errorf("no progress lines:\n%s", f.console.String())
	}
}

func TestHealthGateFailsThenRollback(t *testing.T) {
	for _, mech := range []string{ab.BLSName, ab.UBootName} {
		t.Run(mech, func(t *testing.T) {
			f := newFake(t, mech)
			if _, err := f.u.Apply(context.Background(), makeBundle(t, "1.1.0", nil, key), Options{Tries: 1}); err != nil {
				t.Fatal(err)
			}
			// The one trial boot: counted down by the loader.
			if mech == ab.BLSName {
				os.Rename(filepath.Join(f.boot, "loader/entries/basalt-b+1-0.conf"), filepath.Join(f.boot, "loader/entries/basalt-b+0-1.conf"))
				f.bcp = `\loader\entries\basalt-b+0-1.conf`
			} else {
				ab.Dir(f.boot).WriteFile(contract.BootStateFile, ab.StateText("a", "b", 0))
			}
			f.restart(t, mech, "b", "1.1.0")
			rebooted := make(chan struct{})
			f.u.AfterBoot(context.Background(), func() (bool, string) { return false, "service app restarted 3 times" },
				GateOptions{Timeout: 50 * time.Millisecond, Poll: 5 * time.Millisecond}, func() { close(rebooted) })
			select {
			case <-rebooted:
			case <-time.After(5 * time.Second):
				t.Fatal("no reboot after the gate's timeout")
			}
			// Tries spent: the loader boots a again.
			f.bcp = ""
			f.restart(t, mech, "a", "1.0.0")
			if err := f.u.AfterBoot(context.Background(), nil, GateOptions{}, nil); err != nil {
				t.Fatal(err)
			}
			st := f.u.Status()
			if st.Phase != RolledBack || st.FailedVersion != "1.1.0" || !strings.Contains(st.FailedReason, "service app restarted 3 times") || st.AB != "committed a" {
				t.Fatalf("status %+v\n%s", st, f.console.String())
			}
			if !strings.Contains(f.console.String(), "rolled back from 1.1.0 (slot b): health gate did not pass") {
				t.Errorf("console:\n%s", f.console.String())
			}
			// Not retried by itself; by hand it is.
			if _, err := f.u.Apply(context.Background(), makeBundle(t, "1.1.0", nil, key), Options{SkipVersion: st.FailedVersion}); err == nil || !strings.Contains(err.Error(), "not retrying") {
				t.Errorf("retry by the channel: %v", err)
			}
			if _, err := f.u.Apply(context.Background(), makeBundle(t, "1.1.0", nil, key), Options{}); err != nil {
				t.Errorf("retry by hand: %v", err)
			}
		})
	}
}

func TestRollbackWithoutReport(t *testing.T) {
	f := newFake(t, ab.UBootName)
	if _, err := f.u.Apply(context.Background(), makeBundle(t, "1.1.0", nil, key), Options{Tries: 1}); err != nil {
		t.Fatal(err)
	}
	// The trial's kernel panicked: nothing recorded; the loader fell back.
	ab.Dir(f.boot).WriteFile(contract.BootStateFile, ab.StateText("a", "b", 0))
	f.restart(t, ab.UBootName, "a", "1.0.0")
	f.u.AfterBoot(context.Background(), nil, GateOptions{}, nil)
	if st := f.u.Status(); st.Phase != RolledBack || !strings.Contains(st.FailedReason, "left no reason") {
		t.Errorf("status %+v", st)
	}
}

func TestInWindow(t *testing.T) {
	at := func(h int, day int) time.Time { return time.Date(2026, 12, day, h, 30, 0, 0, time.UTC) }
	win := ChannelOf(nil).Window
	if !InWindow(win, at(5, 1)) {
		t.Error("no window: always")
	}
	cw := &config.Window{Start: "23:00", Duration: "3h"}
	for h, want := range map[int]bool{22: false, 23: true, 0: true, 1: true, 2: false, 12: false} {
		if got := InWindow(cw, at(h, 2)); got != want {
			t.Errorf("%02d:30: %v, want %v", h, got, want)
		}
	}
}

func TestDecodeEFIString(t *testing.T) {
	b := []byte{7, 0, 0, 0}
	for _, r := range `\loader\entries\basalt-b+2-1.conf` {
		b = append(b, byte(r), 0)
	}
	b = append(b, 0, 0)
	if got := DecodeEFIString(b); got != `\loader\entries\basalt-b+2-1.conf` {
		t.Errorf("%q", got)
	}
}

// A rootfs with a verity section boots under dm-verity: the armed entry
// (BLS options, U-Boot's args.txt) carries the signed root hash.
func TestApplyVerityArgs(t *testing.T) {
	for _, mech := range []string{ab.BLSName, ab.UBootName} {
		f := newFake(t, mech)
		withVerity := func(m *bundle.Manifest) {
			m.Payloads[0].Verity = &bundle.Verity{RootHash: strings.Repeat("ab", 32), Salt: "00", DataBlocks: 12, HashOffset: 12 * 4096, Algorithm: "sha256", BlockSize: 4096}
		}
		if _, err := f.u.Apply(context.Background(), makeBundle(t, "1.1.0", withVerity, key), Options{}); err != nil {
			t.Fatal(err)
		}
		want := "basalt.verity=" + strings.Repeat("ab", 32) + " basalt.verity.blocks=12"
		file := filepath.Join(f.boot, "loader/entries/basalt-b+3-0.conf")
		if mech == ab.UBootName {
			file = filepath.Join(f.boot, "b", contract.SlotArgsFile)
		}
		if b, _ := os.ReadFile(file); !strings.Contains(string(b), want) {
			t.Errorf("%s: %s lacks %q:\n%s", mech, file, want, b)
		}
	}
}

// `basalt-init update apply` talks to PID 1 over the socket: the reply
// carries the result; a refused bundle comes back as an error.
func TestSocketApply(t *testing.T) {
	f := newFake(t, ab.BLSName)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sock := filepath.Join(t.TempDir(), "update.sock")
	rebooted := make(chan struct{}, 1)
	if err := f.u.Serve(ctx, sock, func() Options { return Options{} }, func() { rebooted <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	rep, err := Ask(sock, Request{Source: makeBundle(t, "0.5.0", nil, key)}, time.Minute)
	if err != nil || !strings.Contains(rep.Error, "lower than the running") {
		t.Errorf("lower version: %+v %v", rep, err)
	}
	rep, err = Ask(sock, Request{Source: makeBundle(t, "1.1.0", nil, key), Reboot: true}, time.Minute)
	if err != nil || rep.Error != "" || rep.Version != "1.1.0" || rep.Status.Phase != Written {
		t.Fatalf("apply: %+v %v", rep, err)
	}
	select {
	case <-rebooted:
	case <-time.After(5 * time.Second):
		t.Error("no reboot after apply --reboot")
	}
}
