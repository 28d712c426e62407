package main

import (
	"bufio"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/surge-retail/surge/engine"
)

func init() { rootCmd.AddCommand(newDrawCmd()) }

// drawRegistrantsMax bounds the registrants `surge draw` reads (the
// engine's registrants bound allows at most ten million).
const drawRegistrantsMax = 10_000_000

func newDrawCmd() *cobra.Command {
	var (
		seed     string
		quantity int64
		digests  bool
	)
	cmd := &cobra.Command{
		Use:   "draw --seed SEED [--quantity N] < registrants",
		Short: "Re-run a sale's draw (抽签) from its published seed and its registrant list",
		Long: `Re-run the draw of a flash sale with registration (预约), so that anyone can
check the winners Surge admitted. Standard input is the registrant list: one
user id a line, or the CSV export of GET /admin/v1/flash-sales/{id}/registrations?format=csv
(the first column is read; its header row is skipped). The winners are the
--quantity registrants with the smallest hex HMAC-SHA256(key = seed,
message = user id); printed one a line, smallest digest first (with
--digests, "digest user_id"). --quantity 0 (the default) admits everyone.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if seed == "" {
				return fmt.Errorf("--seed is required (the sale's draw_seed, published after the draw)")
			}
			if quantity < 0 {
				return fmt.Errorf("--quantity must be 0 (everyone) or more, got %d", quantity)
			}
			var users []string
			sc := bufio.NewScanner(cmd.InOrStdin())
			sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
			for first := true; sc.Scan(); first = false {
				line := strings.TrimSpace(strings.TrimPrefix(sc.Text(), "\ufeff"))
				if i := strings.IndexByte(line, ','); i >= 0 {
					line = line[:i]
				}
				if line == "" || first && line == "user_id" {
					continue
				}
				if len(users) == drawRegistrantsMax {
					return fmt.Errorf("more than %d registrants", drawRegistrantsMax)
				}
				users = append(users, line)
			}
			if err := sc.Err(); err != nil {
				return fmt.Errorf("cannot read the registrants: %w", err)
			}
			w := bufio.NewWriter(cmd.OutOrStdout())
			for _, u := range engine.Draw(seed, users, quantity) {
				if digests {
					fmt.Fprintf(w, "%s %s\n", engine.DrawDigest(seed, u), u)
				} else {
					fmt.Fprintln(w, u)
				}
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&seed, "seed", "", "the sale's draw_seed")
	cmd.Flags().Int64Var(&quantity, "quantity", 0, "the sale's draw_quantity (0: every registrant)")
	cmd.Flags().BoolVar(&digests, "digests", false, "print each winner's digest before its id")
	return cmd
}
