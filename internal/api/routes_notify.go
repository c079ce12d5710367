package api

import (
	"net/http"

	"github.com/steward-iot/steward/internal/notify"
	"github.com/steward-iot/steward/internal/openapi"
)

func (s *Server) notifyRoutes() []route {
	if s.notify == nil {
		return nil
	}
	const base = "/api/v1/orgs/{org}/subscriptions"
	tags := []string{"notifications"}
	return []route{
		{op: openapi.Operation{Method: "POST", Path: base, ID: "createSubscription",
			Summary: "Subscribe a webhook (signed per Standard Webhooks) or an email address to event types. The webhook secret is in this response only.",
			Tags:    tags, Params: []openapi.Param{idemParam}, Request: notify.CreateSubscriptionRequest{},
			Response: notify.CreatedSubscription{}, Status: http.StatusCreated, Errors: createErrors}, handle: s.createSubscription, idempotent: true},
		{op: openapi.Operation{Method: "GET", Path: base, ID: "listSubscriptions", Summary: "The organization's notification subscriptions.",
			Tags: tags, Params: pageParams, Response: Page[notify.Subscription]{}, Errors: readErrors}, handle: s.listSubscriptions},
		{op: openapi.Operation{Method: "GET", Path: base + "/{id}", ID: "getSubscription", Summary: "One subscription.",
			Tags: tags, Response: notify.Subscription{}, Errors: readErrors}, handle: s.getSubscription},
		{op: openapi.Operation{Method: "PATCH", Path: base + "/{id}", ID: "updateSubscription",
			Summary: "Enable or disable a subscription, or change its event types or description.",
			Tags:    tags, Request: notify.UpdateSubscriptionRequest{}, Response: notify.Subscription{},
			Errors: []int{400, 401, 403, 404}}, handle: s.updateSubscription},
		{op: openapi.Operation{Method: "DELETE", Path: base + "/{id}", ID: "deleteSubscription",
			Summary: "Delete a subscription and its delivery log.", Tags: tags, Response: nil, Status: http.StatusNoContent,
			Errors: readErrors}, handle: s.deleteSubscription},
		{op: openapi.Operation{Method: "POST", Path: base + "/{id}/rotate-secret", ID: "rotateSubscriptionSecret",
			Summary: "Issue a new webhook secret (in this response only); the old one keeps signing for an overlap period.",
			Tags:    tags, Response: notify.CreatedSubscription{}, Errors: []int{401, 403, 404, 409}}, handle: s.rotateSubscriptionSecret},
		{op: openapi.Operation{Method: "POST", Path: base + "/{id}/test", ID: "testSubscription",
			Summary: "Queue a ping event to the subscription; follow it in the delivery log.",
			Tags:    tags, Response: notify.Delivery{}, Status: http.StatusAccepted, Errors: []int{401, 403, 404, 409}}, handle: s.testSubscription},
		{op: openapi.Operation{Method: "GET", Path: base + "/{id}/deliveries", ID: "listDeliveries",
			Summary: "The subscription's delivery log, newest first.", Tags: tags, Params: pageParams,
			Response: Page[notify.Delivery]{}, Errors: readErrors}, handle: s.listDeliveries},
		{op: openapi.Operation{Method: "GET", Path: base + "/{id}/deliveries/{delivery}", ID: "getDelivery",
			Summary: "One delivery with its payload and every attempt.", Tags: tags,
			Response: notify.DeliveryDetail{}, Errors: readErrors}, handle: s.getDelivery},
	}
}

func (s *Server) createSubscription(c *call) (any, error) {
	var req notify.CreateSubscriptionRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	return s.notify.CreateSubscription(c.r.Context(), c.p, req)
}

func (s *Server) listSubscriptions(c *call) (any, error) {
	pq, err := c.page()
	if err != nil {
		return nil, err
	}
	items, next, err := s.notify.ListSubscriptions(c.r.Context(), c.p, pq.after, pq.limit)
	return newPage(items, next), err
}

func (s *Server) getSubscription(c *call) (any, error) {
	return s.notify.GetSubscription(c.r.Context(), c.p, c.r.PathValue("id"))
}

func (s *Server) updateSubscription(c *call) (any, error) {
	var req notify.UpdateSubscriptionRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	return s.notify.UpdateSubscription(c.r.Context(), c.p, c.r.PathValue("id"), req)
}

func (s *Server) deleteSubscription(c *call) (any, error) {
	return nil, s.notify.DeleteSubscription(c.r.Context(), c.p, c.r.PathValue("id"))
}

func (s *Server) rotateSubscriptionSecret(c *call) (any, error) {
	return s.notify.RotateSecret(c.r.Context(), c.p, c.r.PathValue("id"))
}

func (s *Server) testSubscription(c *call) (any, error) {
	return s.notify.SendTest(c.r.Context(), c.p, c.r.PathValue("id"))
}

func (s *Server) listDeliveries(c *call) (any, error) {
	pq, err := c.page()
	if err != nil {
		return nil, err
	}
	items, next, err := s.notify.ListDeliveries(c.r.Context(), c.p, c.r.PathValue("id"), pq.after, pq.limit)
	return newPage(items, next), err
}

func (s *Server) getDelivery(c *call) (any, error) {
	return s.notify.GetDelivery(c.r.Context(), c.p, c.r.PathValue("id"), c.r.PathValue("delivery"))
}
