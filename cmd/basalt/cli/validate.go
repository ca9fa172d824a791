package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/basaltos/basalt/image/spec"
)

type validateOptions struct {
	file string
}

func newValidateCmd(_ *globalOptions) *cobra.Command {
	o := &validateOptions{}
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Check a basalt.yaml: every error at once, with file, line and YAML path",
		Long: `Decode and validate a spec without building: unknown keys, wrong types,
unknown boards, missing files, sizes. Every error is printed as
FILE:LINE: .path.to.key: message; warnings go to stderr too. Exit code 2 when
the spec is invalid. Without -f, the embedded default spec is checked.

  basalt validate -f basalt.yaml
  basalt validate -f examples/retail-store/basalt.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := loadSpec(cmd, o.file)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: valid\n", specName(o.file))
			return nil
		},
	}
	cmd.Flags().StringVarP(&o.file, "file", "f", "", "spec file (default: the embedded default spec)")
	return cmd
}

func specName(file string) string {
	if file == "" {
		return spec.DefaultFile
	}
	return file
}

// loadSpec loads file (or the default spec), printing warnings to stderr.
func loadSpec(cmd *cobra.Command, file string) (*spec.Spec, error) {
	if file == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, err
		}
		return spec.Default(wd), nil
	}
	s, warns, err := spec.Load(file)
	for _, w := range warns {
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", w)
	}
	if err != nil {
		return nil, err // a spec error matches errclass.ErrInvalid
	}
	return s, nil
}
