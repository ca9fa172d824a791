package cli

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/basaltos/basalt/contract/bundle"
	"github.com/basaltos/basalt/internal/errclass"
)

// Key file names in the directory `basalt keygen -o DIR` writes.
const (
	keyPrivateName = "basalt-sign.key"
	keyPublicName  = "basalt-sign.pub"
)

func newKeygenCmd(_ *globalOptions) *cobra.Command {
	var out string
	var secureBoot bool
	cmd := &cobra.Command{
		Use:   "keygen",
		Short: "Make an ed25519 key pair for signing update bundles (or Secure Boot keys)",
		Long: `Write DIR/basalt-sign.key (the private key, PEM PKCS#8, mode 0600) and
DIR/basalt-sign.pub (the public key, PEM). Name the public key in the spec's
update.publicKey (one file or a list, for key rotation) so that images trust
it; sign with basalt build --sign-key DIR/basalt-sign.key or basalt bundle sign.
Existing key files are never overwritten.

With --secure-boot, write UEFI Secure Boot keys instead: PK, KEK and db
(NAME.key RSA-2048 PEM, mode 0600; NAME.crt; NAME.esl, the EFI signature
list; NAME.auth, the time-based authenticated variable that enrolls it:
PK and KEK signed by PK, db by KEK). Name DIR in the spec's secureBoot.dir:
the build signs the boot chain with db and puts the .auth files on the
image, where systemd-boot enrolls them when the firmware is in setup mode.

  basalt keygen -o keys/
  basalt keygen --secure-boot -o sb-keys/`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if secureBoot {
				return keygenSecureBoot(cmd.OutOrStdout(), out)
			}
			pub, priv, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				return err
			}
			pb, err := bundle.MarshalPublicKey(pub)
			if err != nil {
				return err
			}
			kb, err := bundle.MarshalPrivateKey(priv)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			kp, pp := filepath.Join(out, keyPrivateName), filepath.Join(out, keyPublicName)
			if err := refuseExisting(kp, pp); err != nil {
				return err
			}
			if err := writeNew(kp, kb, 0o600); err != nil {
				return err
			}
			if err := writeNew(pp, pb, 0o644); err != nil {
				os.Remove(kp)
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "private key %s (keep it secret)\npublic key  %s (update.publicKey in the spec)\n", kp, pp)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", ".", "directory to write the key pair to")
	cmd.Flags().BoolVar(&secureBoot, "secure-boot", false, "write UEFI Secure Boot keys (PK, KEK, db) and their .auth enrollment files")
	return cmd
}

// refuseExisting fails (invalid input) when any of paths exists: keygen
// never overwrites a key.
func refuseExisting(paths ...string) error {
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return errclass.Invalid(fmt.Errorf("%s exists: not overwriting a key (choose another -o)", p))
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// writeNew creates path with data and mode (failing if it exists), synced.
func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}
