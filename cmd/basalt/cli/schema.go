package cli

import (
	"github.com/spf13/cobra"

	"github.com/basaltos/basalt/image/spec"
)

func newSchemaCmd(_ *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of basalt.yaml (for editors)",
		Long: `Print the JSON Schema (draft 2020-12) of the spec, generated from basalt's Go
types, with a description for every key. Point your editor's YAML language
server at it:

  basalt schema > basalt.schema.json
  # in basalt.yaml:  # yaml-language-server: $schema=basalt.schema.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := spec.Schema()
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
}
