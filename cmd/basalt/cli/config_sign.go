package cli

import (
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/basaltos/basalt/contract/bundle"
	"github.com/basaltos/basalt/contract/config"
	"github.com/basaltos/basalt/internal/errclass"
)

func newConfigSignCmd() *cobra.Command {
	var keyFile string
	c := &cobra.Command{
		Use:   "sign --key KEY FILE...",
		Short: "Sign config drop-ins or NoCloud files for images built with configTrust: signed",
		Long: `Write FILE.sig next to each FILE: a detached ed25519 signature by KEY (the
private key basalt keygen writes; its public key is the spec's configKey).
Under configTrust: signed the device merges basalt/config.yaml, config.d
drop-ins and NoCloud user-data and meta-data only with a valid FILE.sig next
to them. Files are validated first; a changed file needs a new signature.

  basalt config sign --key keys/basalt-sign.key site.yaml
  basalt config add edge.img site.yaml --sign-key keys/basalt-sign.key`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			key, err := readSignKey(keyFile)
			if err != nil {
				return err
			}
			var docs []string // NoCloud meta-data is not a config document
			for _, f := range files {
				if filepath.Base(f) != "meta-data" {
					docs = append(docs, f)
				}
			}
			if _, err := parseFiles(cmd.ErrOrStderr(), docs...); err != nil {
				return err
			}
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil {
					return err
				}
				if err := os.WriteFile(f+config.SigSuffix+".tmp", config.Sign(key, b), 0o644); err != nil {
					return err
				}
				if err := os.Rename(f+config.SigSuffix+".tmp", f+config.SigSuffix); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: wrote %s\n", f, f+config.SigSuffix)
			}
			return nil
		},
	}
	c.Flags().StringVar(&keyFile, "key", "", "ed25519 private key (PEM, from basalt keygen)")
	c.MarkFlagRequired("key")
	return c
}

// readSignKey reads a private key file basalt keygen wrote.
func readSignKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, errclass.Invalidf("signing key: %w", err)
	}
	k, err := bundle.ParsePrivateKey(b)
	if err != nil {
		return nil, errclass.Invalidf("signing key %s: %w", path, err)
	}
	return k, nil
}
