package cli

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/basaltos/basalt/image/secureboot"
	"github.com/basaltos/basalt/internal/errclass"
)

func TestKeygenSecureBoot(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sb")
	if code, out, errs := runCLI("keygen", "--secure-boot", "-o", dir); code != 0 {
		t.Fatalf("keygen --secure-boot: exit %d\n%s%s", code, out, errs)
	}
	for _, n := range []string{"PK", "KEK", "db"} {
		for ext, mode := range map[string]os.FileMode{".key": 0o600, ".crt": 0o644, ".esl": 0o644, ".auth": 0o644} {
			fi, err := os.Stat(filepath.Join(dir, n+ext))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != mode {
				t.Errorf("%s%s: mode %v, want %v", n, ext, fi.Mode().Perm(), mode)
			}
		}
	}
	if _, err := secureboot.LoadSigner(filepath.Join(dir, secureboot.DBKeyFile), filepath.Join(dir, secureboot.DBCertFile)); err != nil {
		t.Errorf("db key pair: %v", err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "PK.key"))
	if code, _, _ := runCLI("keygen", "--secure-boot", "-o", dir); code != errclass.ExitInvalid {
		t.Errorf("keygen --secure-boot over existing keys: exit %d, want %d", code, errclass.ExitInvalid)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "PK.key")); string(after) != string(before) {
		t.Error("an existing key was overwritten")
	}
}
