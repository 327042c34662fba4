package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
)

// pageFlags are the --limit and --continue flags of list commands. Without
// them a list command reads every page; with them it prints one page and
// tells on stderr how to get the next.
type pageFlags struct {
	limit int
	cont  string
}

func (p *pageFlags) add(cmd *cobra.Command) {
	cmd.Flags().IntVar(&p.limit, "limit", 0, "print at most this many items (one page, at most 500; default: all)")
	cmd.Flags().StringVar(&p.cont, "continue", "", "continue a --limit listing where the previous page ended (the token it printed)")
}

// listItems returns every item (all) or one page (page), as the flags ask.
func listItems[T any](a *App, cmd *cobra.Command, p pageFlags, all func() ([]T, error), page func(client.PageOptions) (*client.Page[T], error)) ([]T, error) {
	if p.limit < 0 {
		return nil, usageErrorf("--limit %d: want a number >= 1", p.limit)
	}
	if p.limit == 0 && p.cont == "" {
		items, err := all()
		if items == nil {
			items = []T{}
		}
		return items, err
	}
	pg, err := page(client.PageOptions{Limit: p.limit, Continue: p.cont})
	if err != nil {
		return nil, err
	}
	if pg.Continue != "" {
		fmt.Fprintf(a.Stderr, "More items: add --continue %s\n", pg.Continue)
	}
	return pg.Items, nil
}
