// Command surge is Surge's one binary: `surge serve` runs the gateway,
// `surge loadtest` rehearses a sale day against any server that speaks the
// API, `surge bench` measures Surge next to floors taken in the same run.
package main

import (
	"os"

	"github.com/spf13/cobra"
)

var rootCmd = &cobra.Command{
	Use:           "surge",
	Short:         "Surge: the flash-sale and storefront gateway of a retail mini-program",
	SilenceUsage:  true,
	SilenceErrors: false,
}

func main() {
	if err := rootCmd.Execute(); err != nil {
		os.Exit(exitCode(err))
	}
}

// exitCoder lets a subcommand choose the process exit status.
type exitCoder interface{ ExitCode() int }

func exitCode(err error) int {
	if ec, ok := err.(exitCoder); ok {
		return ec.ExitCode()
	}
	return 2
}
