package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxResponseRead bounds how much of a response body is read; the rest is
// dropped with the connection.
const maxResponseRead = 64 << 10

// userAgent names the sender to receivers.
const userAgent = "Steward-Webhooks/1"

// sendWebhook POSTs the stored payload, signed for this attempt, and
// classifies the answer per the Standard Webhooks guidance:
//
//   - 2xx: delivered.
//   - 410 Gone: the receiver wants no more; the delivery fails and the
//     subscription is disabled.
//   - anything else (3xx, which is not followed; other 4xx; 5xx), a
//     timeout or a network error: a failed attempt, retried on the
//     schedule. The spec counts every non-2xx as a failure to retry. We do
//     not fail fast on 4xx: 401/403/404 are commonly transient on the
//     receiver's side (a deploy, a secret rotation not yet applied), and
//     the schedule bounds the cost. Retry-After (429, 503) is honoured as a
//     lower bound on the next delay.
//   - a destination address the guard refuses: fails at once; retrying
//     would only probe the internal address again.
func (s *Service) sendWebhook(ctx context.Context, d Delivery, sub Subscription, at time.Time) outcome {
	secrets := []Secret{sub.SigningSecret}
	if sub.PreviousSecret != "" && sub.PreviousSecretUntil != nil && at.Before(*sub.PreviousSecretUntil) {
		secrets = append(secrets, sub.PreviousSecret)
	}
	sig, err := signatureHeader(secrets, d.MessageID, at, d.Payload)
	if err != nil {
		return outcome{err: "cannot sign: " + err.Error(), permanent: true}
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sub.URL, bytes.NewReader(d.Payload))
	if err != nil {
		return outcome{err: "bad webhook URL: " + err.Error(), permanent: true}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set(HeaderID, d.MessageID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(at.Unix(), 10))
	req.Header.Set(HeaderSignature, sig)
	resp, err := s.client.Do(req)
	if err != nil {
		var blocked *errBlocked
		switch {
		case errors.As(err, &blocked):
			return outcome{err: blocked.Error(), permanent: true}
		case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
			return outcome{err: fmt.Sprintf("no answer within %s", s.cfg.Timeout)}
		}
		return outcome{err: err.Error()}
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseRead))
	o := outcome{statusCode: resp.StatusCode, response: string(snippet)}
	switch c := resp.StatusCode; {
	case c >= 200 && c <= 299:
		o.ok = true
	case c == http.StatusGone:
		o.gone, o.err = true, "HTTP 410 Gone: the endpoint asked for no more webhooks"
	default:
		o.err = "HTTP " + strconv.Itoa(c)
		if c >= 300 && c <= 399 {
			o.err += " (redirects are not followed; update the subscription's URL)"
		}
		o.retryAfter = retryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return o
}

// retryAfter parses a Retry-After header: seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n > 0 {
		return time.Duration(min(n, int(maxRetryAfter/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
