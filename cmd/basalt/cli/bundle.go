package cli

import (
	"archive/tar"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/basaltos/basalt/contract/bundle"
	"github.com/basaltos/basalt/internal/errclass"
)

func newBundleCmd(_ *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bundle",
		Short: "Sign, verify and inspect update bundles",
		Long: `An update bundle (NAME-VERSION-BOARD.bundle, written by basalt build
--sign-key) is a tar of manifest.json, its ed25519 signature and the payloads
(rootfs, kernel, initrd, dtbs; a Secure Boot image: rootfs and one signed
UKI per slot, uki-a and uki-b). These commands sign a bundle away from the
build machine and check bundles for audits.

  basalt bundle inspect out/demo-1.1.0-qemu-x86_64.bundle
  basalt bundle verify out/demo-1.1.0-qemu-x86_64.bundle --key keys/basalt-sign.pub
  basalt bundle sign out/demo-1.1.0-qemu-x86_64.bundle --key keys/basalt-sign.key`,
	}
	var key, out string
	sign := &cobra.Command{
		Use:   "sign BUNDLE --key PRIVATE_KEY",
		Short: "Sign (or re-sign) a bundle's manifest; writes -o or replaces BUNDLE",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := loadPrivateKey(key)
			if err != nil {
				return err
			}
			dst := out
			if dst == "" {
				dst = args[0]
			}
			return signBundle(args[0], dst, k)
		},
	}
	sign.Flags().StringVar(&key, "key", os.Getenv("BASALT_SIGN_KEY"), "private key file (basalt keygen; default $BASALT_SIGN_KEY)")
	sign.Flags().StringVarP(&out, "output", "o", "", "write the signed bundle here (default: replace BUNDLE)")
	var pubs []string
	verify := &cobra.Command{
		Use:   "verify BUNDLE --key PUBLIC_KEY...",
		Short: "Check the signature and every payload's size and sha256",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var keys []ed25519.PublicKey
			for _, p := range pubs {
				b, err := os.ReadFile(p)
				if err != nil {
					return errclass.Invalid(err)
				}
				ks, err := bundle.ParsePublicKeys(b)
				if err != nil {
					return errclass.Invalid(fmt.Errorf("%s: %w", p, err))
				}
				keys = append(keys, ks...)
			}
			if len(keys) == 0 {
				return errclass.Invalid(fmt.Errorf("--key PUBLIC_KEY is required"))
			}
			f, err := os.Open(args[0])
			if err != nil {
				return errclass.Invalid(err)
			}
			defer f.Close()
			r, err := bundle.Open(f, keys)
			if err != nil {
				return errclass.Invalid(fmt.Errorf("%s: %w", args[0], err))
			}
			for {
				p, pr, err := r.Next()
				if err == io.EOF {
					break
				}
				if err == nil {
					_, err = io.Copy(io.Discard, pr)
				}
				if err != nil {
					return errclass.Invalid(fmt.Errorf("%s: %w", args[0], err))
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%-8s %12d  sha256 %s  ok\n", p.Name, p.Size, p.SHA256)
			}
			m := r.Manifest()
			fmt.Fprintf(cmd.OutOrStdout(), "%s: signature and payloads ok (%s %s for %s)\n", args[0], m.Image, m.Version, m.Board)
			return nil
		},
	}
	verify.Flags().StringArrayVar(&pubs, "key", nil, "trusted public key file (repeatable)")
	inspect := &cobra.Command{
		Use:   "inspect BUNDLE",
		Short: "Print a bundle's manifest (the signature is not checked: use verify)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return errclass.Invalid(err)
			}
			defer f.Close()
			raw, sig, err := bundle.ReadHead(tar.NewReader(f))
			if err != nil {
				return errclass.Invalid(fmt.Errorf("%s: %w", args[0], err))
			}
			m, err := bundle.ParseManifest(raw)
			if err != nil {
				return errclass.Invalid(fmt.Errorf("%s: %w", args[0], err))
			}
			w := cmd.OutOrStdout()
			signed := "signed (not checked here)"
			if len(sig) == 0 {
				signed = "NOT signed"
			}
			fmt.Fprintf(w, "%s: %s %s for board %s (compat %s), %s\n", filepath.Base(args[0]), m.Image, m.Version, m.Board, m.Compat, signed)
			j, _ := json.MarshalIndent(m, "", "  ")
			fmt.Fprintf(w, "%s\n", j)
			return nil
		},
	}
	cmd.AddCommand(sign, verify, inspect)
	return cmd
}

func loadPrivateKey(path string) (ed25519.PrivateKey, error) {
	if path == "" {
		return nil, errclass.Invalid(fmt.Errorf("no signing key: --key FILE or BASALT_SIGN_KEY (make one with basalt keygen)"))
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, errclass.Invalid(err)
	}
	k, err := bundle.ParsePrivateKey(b)
	if err != nil {
		return nil, errclass.Invalid(fmt.Errorf("%s: %w", path, err))
	}
	return k, nil
}

// signBundle writes src re-signed with k to dst, via a temporary file.
func signBundle(src, dst string, k ed25519.PrivateKey) error {
	in, err := os.Open(src)
	if err != nil {
		return errclass.Invalid(err)
	}
	defer in.Close()
	raw, _, err := bundle.ReadHead(tar.NewReader(in))
	if err != nil {
		return errclass.Invalid(fmt.Errorf("%s: %w", src, err))
	}
	if _, err := in.Seek(0, io.SeekStart); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".bundle-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := bundle.Resign(tmp, in, bundle.Sign(raw, k)); err != nil {
		tmp.Close()
		return errclass.Invalid(fmt.Errorf("%s: %w", src, err))
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}
