package main

import (
	"fmt"

	"github.com/spf13/cobra"
	"github.com/surge-retail/surge/internal/buildinfo"
)

func init() { rootCmd.AddCommand(newVersionCmd()) }

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print Surge's version, the commit it was built from and its Go version",
		Long: `Print the build: its version (the -ldflags
"-X github.com/surge-retail/surge/internal/buildinfo.Version=..." value, else the
version the Go toolchain recorded), the commit (vcs.revision, "-dirty" when the
tree had changes; else the -ldflags ".../buildinfo.Commit=..." value, as "make
build" sets both; else "unknown") and the Go version.
/metrics exports the same as surge_build_info{version,go_version,commit}.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), buildinfo.Get())
			return err
		},
	}
}
