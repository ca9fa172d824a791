package cli

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/basaltos/basalt/boards"
)

func newBoardsCmd(_ *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "boards",
		Short: "List the boards basalt builds for",
		Long: `List the boards with their architecture, bootloader and A/B mechanism.

  basalt boards`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "BOARD\tARCH\tBOOTLOADER\tA/B\tTABLE\tDESCRIPTION")
			for _, b := range boards.All() {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", b.Name, b.Arch, b.Bootloader, b.AB, b.Table, b.Description)
			}
			return w.Flush()
		},
	}
}
