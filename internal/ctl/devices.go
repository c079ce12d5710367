package ctl

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/steward-iot/steward/agent/proto"
	"github.com/steward-iot/steward/internal/api"
	"github.com/steward-iot/steward/internal/identity"
	"github.com/steward-iot/steward/internal/inventory"
)

// bulkSize is the most device ids one bulk request may carry (the
// server's limit). Tests lower it.
var bulkSize = 1000

// deviceStatuses are the statuses --status accepts; the server would
// silently match nothing for a misspelt one.
var deviceStatuses = []string{proto.StatusPending, proto.StatusActive, proto.StatusRejected,
	proto.StatusRevoked, proto.StatusQuarantined, proto.StatusDecommissioned}

const (
	// shownComponents and shownVersions bound what `devices show` prints of
	// a device's software; --json has all of it.
	shownComponents = 5
	shownVersions   = 10
)

func devicesCommand(o *options) *cobra.Command {
	cmd := &cobra.Command{Use: "devices", Short: "List, inspect, accept, reject, revoke and tag devices"}

	var f deviceFilter
	list := &cobra.Command{
		Use:   "list [--status pending] [--query 'QUERY'] [--group ID] [--limit N] [--json | --csv]",
		Short: "List and search devices",
		Long: `List the organization's devices, optionally only those in a status, in a
group, or matching a fleet query such as

  product = "gw-100" and tag.region = "eu" and version < "2.4.0"
  battery < 20 and last_seen_age > 7d

Fields: product, hardware_id, status, serial, version, battery, on_mains,
link, metered, free_storage, last_seen_age, enrolled_age, and tag.KEY
(the language is described in docs/fleet-query.md).

--json prints every matching device as a JSON array; --csv streams the
server's CSV export unchanged.`,
		Args: cobra.NoArgs,
		RunE: o.run(func(s *session, _ []string) error { return listDevices(s, f) }),
	}
	f.flags(list, true)

	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show one device with its tags, components and version history",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(s *session, args []string) error {
			path, err := s.orgPath("/devices/" + url.PathEscape(args[0]))
			if err != nil {
				return err
			}
			var d inventory.DeviceDetail
			raw, err := s.get(s.ctx, path, nil, &d)
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSON(raw)
			}
			return printDevice(s, d)
		}),
	}

	var clearAll bool
	tag := &cobra.Command{
		Use:   "tag ID key=value... [--clear]",
		Short: "Set or delete a device's tags",
		Long: `Set tags on a device: key=value sets a tag, key= deletes one. The pairs
are merged into the device's current tags, or with --clear replace them
all ('tag ID --clear' alone removes every tag). A change made by someone
else between ctl reading the tags and writing them back is overwritten.`,
		Args: cobra.MinimumNArgs(1),
		RunE: o.run(func(s *session, args []string) error {
			pairs, err := parseTags(args[1:])
			if err != nil {
				return err
			}
			if len(pairs) == 0 && !clearAll {
				return errors.New("give key=value pairs to set, key= to delete, or --clear")
			}
			path, err := s.orgPath("/devices/" + url.PathEscape(args[0]))
			if err != nil {
				return err
			}
			tags := map[string]string{}
			if !clearAll {
				var d inventory.DeviceDetail
				if _, err := s.get(s.ctx, path, nil, &d); err != nil {
					return err
				}
				maps.Copy(tags, d.Tags)
			}
			for _, p := range pairs {
				if p.value == "" {
					delete(tags, p.key)
				} else {
					tags[p.key] = p.value
				}
			}
			var d inventory.Device
			raw, err := s.sendJSON(s.ctx, http.MethodPut, path+"/tags", api.Tags{Tags: tags}, &d)
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSON(raw)
			}
			_, err = fmt.Fprintf(s.out, "device %s tags: %s\n", d.ID, clean(orNone(formatTags(d.Tags))))
			return err
		}),
	}
	tag.Flags().BoolVar(&clearAll, "clear", false, "replace all current tags instead of merging into them")

	var pre identity.PreauthorizeRequest
	preauthorize := &cobra.Command{
		Use:   "preauthorize [--product SLUG] [--serial S]... [--key-id K]...",
		Short: "Let devices with these serials or key ids go active when they enroll",
		Args:  cobra.NoArgs,
		RunE: o.run(func(s *session, _ []string) error {
			if len(pre.Serials)+len(pre.KeyIDs) == 0 {
				return errors.New("give at least one --serial or --key-id")
			}
			path, err := s.orgPath("/preauthorizations")
			if err != nil {
				return err
			}
			var pas []identity.Preauthorization
			raw, err := s.sendJSON(s.ctx, http.MethodPost, path, pre, &pas)
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSON(raw)
			}
			t := newTable(s.out, "KIND", "VALUE", "PRODUCT")
			for _, p := range pas {
				t.row(p.Kind, p.Value, orAny(pre.Product))
			}
			if err := t.flush(); err != nil {
				return err
			}
			_, err = fmt.Fprintf(s.out, "\n%d preauthorized; these devices go active when they enroll\n", len(pas))
			return err
		}),
	}
	pf := preauthorize.Flags()
	pf.StringVar(&pre.Product, "product", "", "slug of the product the devices must be (default: any)")
	pf.StringArrayVar(&pre.Serials, "serial", nil, "a serial number; repeat for more")
	pf.StringArrayVar(&pre.KeyIDs, "key-id", nil, "a device key id (hex SHA-256 of its public key); repeat for more")

	cmd.AddCommand(list, show, tag, preauthorize,
		statusCommand(o, "accept", "accepted", "Accept pending (or rejected) devices; they go active"),
		statusCommand(o, "reject", "rejected", "Reject devices; they are refused from their next request"),
		statusCommand(o, "revoke", "revoked", "Revoke devices' credentials; they are refused from their next request"))
	cmd.AddCommand(assignCommands(o)...)
	return cmd
}

// deviceFilter holds the flags that select devices to list.
type deviceFilter struct {
	status, query, group string
	limit                int
	csv                  bool
}

func (f *deviceFilter) flags(cmd *cobra.Command, group bool) {
	fs := cmd.Flags()
	fs.StringVar(&f.status, "status", "", "only devices in this status: "+strings.Join(deviceStatuses, ", "))
	fs.StringVar(&f.query, "query", "", `only devices matching this fleet query, e.g. 'version < "2.4.0"'`)
	if group {
		fs.StringVar(&f.group, "group", "", "only members of this group (id)")
	}
	fs.IntVar(&f.limit, "limit", 0, "list at most this many (default: all)")
	fs.BoolVar(&f.csv, "csv", false, "print the server's CSV export of every matching device")
}

func listDevices(s *session, f deviceFilter) error {
	if f.status != "" && !slices.Contains(deviceStatuses, f.status) {
		return fmt.Errorf("--status %q is not a device status; use one of %s", f.status, strings.Join(deviceStatuses, ", "))
	}
	q := url.Values{}
	for k, v := range map[string]string{"status": f.status, "query": f.query, "group": f.group} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.csv {
		switch {
		case s.json:
			return errors.New("--csv and --json are alternatives; give one")
		case f.limit != 0:
			return errors.New("--limit does not apply to --csv, which exports every matching device")
		}
		path, err := s.orgPath("/devices/export")
		if err != nil {
			return err
		}
		q.Set("format", "csv")
		_, err = s.download(s.ctx, path, q, "text/csv", s.out)
		return err
	}
	path, err := s.orgPath("/devices")
	if err != nil {
		return err
	}
	raw, devs, err := fetchAll[inventory.Device](s, path, q, f.limit)
	if err != nil {
		return err
	}
	if s.json {
		return s.printJSONList(raw)
	}
	t := newTable(s.out, "ID", "PRODUCT", "SERIAL", "STATUS", "VERSION", "LAST SEEN", "LINK", "BATTERY")
	for _, d := range devs {
		t.row(d.ID, d.Product, d.Serial, d.Status, orDash(d.InstalledVersion), optTime(d.LastSeenAt, "never"),
			orDash(d.State.Link), battery(d.State))
	}
	return t.flush()
}

func printDevice(s *session, d inventory.DeviceDetail) error {
	t := newTable(s.out)
	t.row("id:", d.ID)
	t.row("product:", d.Product)
	t.row("serial:", d.Serial)
	t.row("status:", d.Status+" since "+timestamp(d.StatusChangedAt))
	t.row("key id:", d.KeyID+" ("+d.Algorithm+")")
	t.row("enrolled:", timestamp(d.CreatedAt)+" via "+d.EnrolledVia)
	t.row("last seen:", optTime(d.LastSeenAt, "never"))
	t.row("version:", orDash(d.InstalledVersion))
	t.row("link:", orDash(d.State.Link))
	t.row("battery:", battery(d.State))
	t.row("on mains:", yesNo(d.State.OnMains))
	t.row("metered:", yesNo(d.State.Metered))
	t.row("free storage:", bytesIEC(d.State.FreeStorage))
	if d.State.MaintenanceWindow != "" {
		t.row("maintenance window:", d.State.MaintenanceWindow)
	}
	t.row("tags:", orNone(formatTags(d.Tags)))
	t.row("components:", strconv.Itoa(len(d.Components)))
	for _, c := range d.Components[:min(len(d.Components), shownComponents)] {
		t.row("", c.Purl, c.Version)
	}
	if n := len(d.Components) - shownComponents; n > 0 {
		t.row("", fmt.Sprintf("... and %d more (--json lists them all)", n))
	}
	if len(d.Versions) == 0 {
		t.row("version history:", "none")
	}
	for i, v := range d.Versions[:min(len(d.Versions), shownVersions)] {
		label := ""
		if i == 0 {
			label = "version history:"
		}
		t.row(label, timestamp(v.SeenAt), v.Version)
	}
	if n := len(d.Versions) - shownVersions; n > 0 {
		t.row("", fmt.Sprintf("... and %d older (--json lists them)", n))
	}
	return t.flush()
}

// statusCommand is `devices accept|reject|revoke ID...`: one bulk request
// per bulkSize ids, a line per device, and failure if any device failed.
func statusCommand(o *options, action, past, short string) *cobra.Command {
	return &cobra.Command{
		Use:   action + " ID...",
		Short: short,
		Args:  cobra.MinimumNArgs(1),
		RunE: o.run(func(s *session, ids []string) error {
			path, err := s.orgPath("/devices/" + action)
			if err != nil {
				return err
			}
			all := []json.RawMessage{}
			done, failed := 0, 0
			var reqErr error
			for chunk := range slices.Chunk(ids, bulkSize) {
				var res api.StatusResults
				raw, err := s.sendJSON(s.ctx, http.MethodPost, path, api.DeviceIDs{DeviceIDs: chunk}, &res)
				if err != nil {
					reqErr = err
					break
				}
				// The raw results, for --json that keeps fields this ctl does not know.
				var rawRes struct {
					Results []json.RawMessage `json:"results"`
				}
				if err := json.Unmarshal(raw, &rawRes); err != nil {
					return err
				}
				all = append(all, rawRes.Results...)
				done += len(chunk)
				for _, r := range res.Results {
					if r.Error != "" {
						failed++
						fmt.Fprintf(s.errOut, "error: %s: %s\n", clean(r.DeviceID), clean(r.Error))
					} else if !s.json {
						fmt.Fprintf(s.out, "%s device %s: %s\n", past, clean(r.DeviceID), clean(r.Status))
					}
				}
				// A result missing for a device sent counts as a failure.
				if missing := len(chunk) - len(res.Results); missing > 0 {
					failed += missing
					fmt.Fprintf(s.errOut, "error: the server reported on %d of %d devices\n", len(res.Results), len(chunk))
				}
			}
			if s.json {
				if err := s.printJSONList(all); err != nil {
					return err
				}
			}
			if reqErr != nil {
				if done == 0 {
					return reqErr
				}
				return fmt.Errorf("%w\nthe first %d of %d devices were processed as shown; the rest were not", reqErr, done, len(ids))
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d devices not %s", failed, len(ids), past)
			}
			return nil
		}),
	}
}

type tagPair struct{ key, value string }

func parseTags(args []string) ([]tagPair, error) {
	pairs := make([]tagPair, 0, len(args))
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not key=value (or key= to delete a tag)", a)
		}
		pairs = append(pairs, tagPair{k, v})
	}
	return pairs, nil
}

// formatTags lists tags as sorted key=value pairs.
func formatTags(tags map[string]string) string {
	parts := make([]string, 0, len(tags))
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		parts = append(parts, k+"="+tags[k])
	}
	return strings.Join(parts, ", ")
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func battery(st inventory.State) string {
	switch {
	case st.BatteryPercent != nil:
		return strconv.Itoa(*st.BatteryPercent) + "%"
	case st.OnMains:
		return "mains"
	}
	return "-"
}

// bytesIEC formats a byte count in binary units.
func bytesIEC(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
