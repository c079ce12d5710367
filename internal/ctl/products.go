package ctl

import (
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/steward-iot/steward/internal/inventory"
)

func productsCommand(o *options) *cobra.Command {
	cmd := &cobra.Command{Use: "products", Short: "List, show and declare products (device models)"}

	var limit int
	list := &cobra.Command{
		Use:   "list",
		Short: "List the organization's products",
		Args:  cobra.NoArgs,
		RunE: o.run(func(s *session, _ []string) error {
			path, err := s.orgPath("/products")
			if err != nil {
				return err
			}
			raw, prods, err := fetchAll[inventory.Product](s, path, nil, limit)
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSONList(raw)
			}
			t := newTable(s.out, "ID", "SLUG", "NAME", "HARDWARE ID", "CAPABILITY", "LINK", "BATTERY", "END OF SUPPORT")
			for _, p := range prods {
				t.row(p.ID, p.Slug, p.Name, p.HardwareID, string(p.Capability), p.LinkClass, yesNo(p.BatteryPowered),
					optDate(p.EndOfSupport, "-"))
			}
			return t.flush()
		}),
	}
	list.Flags().IntVar(&limit, "limit", 0, "list at most this many (default: all)")

	show := &cobra.Command{
		Use:   "show SLUG|ID",
		Short: "Show one product",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(s *session, args []string) error {
			path, err := s.orgPath("/products/" + url.PathEscape(args[0]))
			if err != nil {
				return err
			}
			var p inventory.Product
			raw, err := s.get(s.ctx, path, nil, &p)
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSON(raw)
			}
			return printProduct(s, p)
		}),
	}

	var req inventory.CreateProductRequest
	var capability string
	create := &cobra.Command{
		Use: "create SLUG --name NAME --hardware-id ID --capability ab|single-slot|mcu-suit|none " +
			"--link ethernet|wifi|cellular|nb-iot|lora [--battery] [--end-of-support 2031-12-31]",
		Short: "Declare a product; devices reporting its hardware id enroll as it",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(s *session, args []string) error {
			path, err := s.orgPath("/products")
			if err != nil {
				return err
			}
			req.Slug = args[0]
			req.Capability = inventory.Capability(capability)
			var p inventory.Product
			raw, err := s.create(s.ctx, path, req, &p)
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSON(raw)
			}
			return printProduct(s, p)
		}),
	}
	f := create.Flags()
	f.StringVar(&req.Name, "name", "", "display name, e.g. \"Gateway 100\"")
	f.StringVar(&req.HardwareID, "hardware-id", "", "what devices of this model report at enrollment, e.g. gw-100-rev-b")
	f.StringVar(&capability, "capability", "", "how it is updated: ab (A/B slots), single-slot, mcu-suit or none")
	f.StringVar(&req.LinkClass, "link", "", "its network link: ethernet, wifi, cellular, nb-iot or lora")
	f.BoolVar(&req.BatteryPowered, "battery", false, "the devices run on battery")
	f.StringVar(&req.EndOfSupport, "end-of-support", "", "declared end of security support, YYYY-MM-DD")
	for _, n := range []string{"name", "hardware-id", "capability", "link"} {
		_ = create.MarkFlagRequired(n)
	}

	cmd.AddCommand(list, show, create)
	return cmd
}

func printProduct(s *session, p inventory.Product) error {
	t := newTable(s.out)
	t.row("id:", p.ID)
	t.row("slug:", p.Slug)
	t.row("name:", p.Name)
	t.row("hardware id:", p.HardwareID)
	t.row("capability:", string(p.Capability))
	t.row("link:", p.LinkClass)
	t.row("battery powered:", yesNo(p.BatteryPowered))
	t.row("end of support:", optDate(p.EndOfSupport, "-"))
	t.row("created:", timestamp(p.CreatedAt))
	return t.flush()
}

// versionsCommand is `ctl versions`: which software versions a product's
// active devices run.
func versionsCommand(o *options) *cobra.Command {
	var (
		product   string
		staleDays int
	)
	cmd := &cobra.Command{
		Use:   "versions --product SLUG [--stale-days N]",
		Short: "Show the installed-version distribution of a product's active devices",
		Args:  cobra.NoArgs,
		RunE: o.run(func(s *session, _ []string) error {
			path, err := s.orgPath("/products/" + url.PathEscape(product) + "/versions")
			if err != nil {
				return err
			}
			q := url.Values{}
			if staleDays != 0 {
				q.Set("stale_days", strconv.Itoa(staleDays))
			}
			var r inventory.VersionReport
			raw, err := s.get(s.ctx, path, q, &r)
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSON(raw)
			}
			t := newTable(s.out, "VERSION", "DEVICES", "SHARE")
			for _, v := range r.Distribution {
				t.row(orDash(v.Version), strconv.Itoa(v.Devices), share(v.Devices, r.Active))
			}
			if err := t.flush(); err != nil {
				return err
			}
			_, err = fmt.Fprintf(s.out, "\n%d active %s, %d not seen for %d days\n",
				r.Active, plural(r.Active, "device", "devices"), r.NotSeen, r.StaleDays)
			return err
		}),
	}
	cmd.Flags().StringVar(&product, "product", "", "product slug or id")
	cmd.Flags().IntVar(&staleDays, "stale-days", 0, "count active devices not seen for this many days (default: the server's, 7)")
	_ = cmd.MarkFlagRequired("product")
	return cmd
}

// share is n as a percentage of total.
func share(n, total int) string {
	if total == 0 {
		return "-"
	}
	return strconv.FormatFloat(float64(n)*100/float64(total), 'f', 1, 64) + "%"
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// optDate formats an optional date, or none when it is absent.
func optDate(t *time.Time, none string) string {
	if t == nil {
		return none
	}
	return t.Format(time.DateOnly)
}
