package ctl

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/steward-iot/steward/internal/notify"
)

func subscriptionsCommand(o *options) *cobra.Command {
	cmd := &cobra.Command{Use: "subscriptions", Short: "Notify webhooks and email addresses of advisories, exposure changes, escalations and reports"}

	var limit int
	list := &cobra.Command{
		Use:   "list",
		Short: "List subscriptions",
		Args:  cobra.NoArgs,
		RunE: o.run(func(s *session, _ []string) error {
			path, err := s.orgPath("/subscriptions")
			if err != nil {
				return err
			}
			raw, items, err := fetchAll[notify.Subscription](s, path, nil, limit)
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSONList(raw)
			}
			t := newTable(s.out, "ID", "KIND", "TARGET", "EVENTS", "ENABLED")
			for _, sub := range items {
				target := sub.URL
				if sub.Kind == notify.KindEmail {
					target = sub.Email
				}
				t.row(sub.ID, sub.Kind, target, strings.Join(sub.EventTypes, ","), yesNo(sub.Enabled))
			}
			return t.flush()
		}),
	}
	list.Flags().IntVar(&limit, "limit", 0, "list at most this many (default: all)")

	var req notify.CreateSubscriptionRequest
	var webhook, email string
	create := &cobra.Command{
		Use:   "create (--webhook URL | --email ADDRESS) [--events advisory.published,device.exposure_changed]",
		Short: "Subscribe a webhook or an email address; a webhook's signing secret is printed once",
		Args:  cobra.NoArgs,
		RunE: o.run(func(s *session, _ []string) error {
			switch {
			case (webhook == "") == (email == ""):
				return fmt.Errorf("give exactly one of --webhook URL or --email ADDRESS")
			case webhook != "":
				req.Kind, req.URL = notify.KindWebhook, webhook
			default:
				req.Kind, req.Email = notify.KindEmail, email
			}
			path, err := s.orgPath("/subscriptions")
			if err != nil {
				return err
			}
			var c notify.CreatedSubscription
			raw, err := s.create(s.ctx, path, req, &c)
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSON(raw)
			}
			fmt.Fprintf(s.out, "subscription %s (%s) for %s\n", c.ID, c.Kind, strings.Join(c.EventTypes, ", "))
			if c.Secret != "" {
				fmt.Fprintf(s.out, "signing secret (shown once; verify webhook-signature with it): %s\n", c.Secret)
			}
			return nil
		}),
	}
	create.Flags().StringVar(&webhook, "webhook", "", "https URL to POST events to (signed per Standard Webhooks)")
	create.Flags().StringVar(&email, "email", "", "address to email events to")
	create.Flags().StringSliceVar(&req.EventTypes, "events", []string{"*"}, "event types ("+strings.Join(notify.EventTypes, ", ")+") or *")
	create.Flags().StringVar(&req.Description, "description", "", "what it is for")

	simple := func(use, short, method, suffix, done string) *cobra.Command {
		return &cobra.Command{
			Use:   use + " ID",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: o.run(func(s *session, args []string) error {
				path, err := s.orgPath("/subscriptions/" + url.PathEscape(args[0]) + suffix)
				if err != nil {
					return err
				}
				raw, err := s.change(s.ctx, method, path, nil)
				if err != nil {
					return err
				}
				if s.json && raw != nil {
					return s.printJSON(raw)
				}
				if strings.Contains(string(raw), `"secret"`) {
					var c notify.CreatedSubscription
					if err := json.Unmarshal(raw, &c); err == nil {
						fmt.Fprintf(s.out, "new signing secret (shown once): %s\n", c.Secret)
					}
				}
				_, err = fmt.Fprintf(s.out, "subscription %s %s\n", args[0], done)
				return err
			}),
		}
	}

	deliveries := &cobra.Command{
		Use:   "deliveries ID",
		Short: "Show a subscription's delivery log, newest first",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(s *session, args []string) error {
			path, err := s.orgPath("/subscriptions/" + url.PathEscape(args[0]) + "/deliveries")
			if err != nil {
				return err
			}
			raw, items, err := fetchAll[notify.Delivery](s, path, nil, limit)
			if err != nil {
				return err
			}
			if s.json {
				return s.printJSONList(raw)
			}
			t := newTable(s.out, "ID", "EVENT", "STATUS", "ATTEMPTS", "LAST ERROR", "CREATED")
			for _, d := range items {
				t.row(d.ID, d.EventType, d.Status, fmt.Sprint(d.Attempts), clip(d.LastError, 50), d.CreatedAt.Format("2006-01-02 15:04:05"))
			}
			return t.flush()
		}),
	}
	deliveries.Flags().IntVar(&limit, "limit", 50, "show at most this many (0: all)")

	cmd.AddCommand(list, create, deliveries,
		simple("test", "Send a ping event (see it in deliveries)", "POST", "/test", "queued a ping"),
		simple("rotate-secret", "Issue a new webhook signing secret; the old one keeps signing for a while", "POST", "/rotate-secret", "has a new secret"),
		simple("delete", "Delete a subscription and its delivery log", "DELETE", "", "deleted"))
	return cmd
}
