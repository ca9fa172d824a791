package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/basaltos/basalt/image/secureboot"
)

// keygenSecureBoot writes a Secure Boot key directory to dir: PK, KEK and
// db keys (0600) and certificates, their EFI signature lists and .auth
// files. Nothing is written when any of the files exists.
func keygenSecureBoot(w io.Writer, dir string) error {
	files, err := secureboot.KeySet("basalt", time.Now())
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var paths []string
	for _, f := range files {
		paths = append(paths, filepath.Join(dir, f.Name))
	}
	if err := refuseExisting(paths...); err != nil {
		return err
	}
	var written []string
	for _, f := range files {
		p := filepath.Join(dir, f.Name)
		mode := os.FileMode(0o644)
		if f.Secret {
			mode = 0o600
		}
		if err := writeNew(p, f.Data, mode); err != nil {
			for _, q := range written {
				os.Remove(q)
			}
			return err
		}
		written = append(written, p)
	}
	fmt.Fprintf(w, "Secure Boot keys in %s: PK, KEK, db (.key 0600: keep them secret; .crt, .esl, .auth)\n"+
		"sign images with them: secureBoot: {dir: %s} in the spec\n", dir, dir)
	return nil
}
