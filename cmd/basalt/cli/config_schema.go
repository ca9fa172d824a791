package cli

import (
	"github.com/spf13/cobra"

	"github.com/basaltos/basalt/contract/config"
)

func newConfigSchemaCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of device-config drop-ins (for editors)",
		Long: `Print the JSON Schema (draft 2020-12) of a versioned device-config document
(apiVersion basalt.dev/v1alpha1, kind DeviceConfig), generated from basalt's Go
types, with each key's documentation. A #cloud-config user-data file uses the
same keys without apiVersion and kind.

  basalt config schema > device-config.schema.json
  # in a drop-in:  # yaml-language-server: $schema=device-config.schema.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := config.Schema()
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
}
