package notify_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/steward-iot/steward/internal/notify"
)

// The test vector of the Standard Webhooks reference Go library
// (standard-webhooks/standard-webhooks, libraries/go/webhook_test.go,
// TestWebhookSign); the Python and JavaScript libraries share the secret,
// id and payload.
const (
	vectorSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorMsgID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTimestamp = 1614265330
	vectorPayload   = `{"test": 2432232314}`
	vectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestSignMatchesStandardWebhooksVector(t *testing.T) {
	got, err := notify.Sign(vectorSecret, vectorMsgID, time.Unix(vectorTimestamp, 0), []byte(vectorPayload))
	if err != nil || got != vectorSignature {
		t.Fatalf("Sign = %q, %v; want %q", got, err, vectorSignature)
	}
	// The reference libraries accept the secret without its prefix too.
	got, err = notify.Sign(strings.TrimPrefix(vectorSecret, notify.SecretPrefix), vectorMsgID, time.Unix(vectorTimestamp, 0), []byte(vectorPayload))
	if err != nil || got != vectorSignature {
		t.Fatalf("Sign without prefix = %q, %v", got, err)
	}
	if err := notify.Verify(vectorSecret, vectorHeaders(vectorSignature), []byte(vectorPayload), time.Minute,
		time.Unix(vectorTimestamp+30, 0)); err != nil {
		t.Fatalf("Verify of the published vector: %v", err)
	}
}

func vectorHeaders(sig string) http.Header {
	h := http.Header{}
	h.Set(notify.HeaderID, vectorMsgID)
	h.Set(notify.HeaderTimestamp, strconv.Itoa(vectorTimestamp))
	h.Set(notify.HeaderSignature, sig)
	return h
}

func TestVerify(t *testing.T) {
	now := time.Unix(vectorTimestamp, 0)
	body := []byte(vectorPayload)
	other := notify.GenerateSecret()
	forged, _ := notify.Sign(other, vectorMsgID, now, body)
	tests := []struct {
		name   string
		secret string
		h      func(http.Header)
		body   []byte
		now    time.Time
		want   error // nil: accepted
	}{
		{name: "valid"},
		{name: "rotation list with the valid one among others", h: func(h http.Header) {
			h.Set(notify.HeaderSignature, "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg== "+
				forged+" v2,"+strings.TrimPrefix(vectorSignature, "v1,")+" "+vectorSignature)
		}},
		{name: "within tolerance, late", now: now.Add(4 * time.Minute)},
		{name: "within tolerance, early", now: now.Add(-4 * time.Minute)},
		{name: "tampered body", body: []byte(`{"test": 2432232315}`), want: notify.ErrNoMatchingSignature},
		{name: "body with trailing space", body: []byte(vectorPayload + " "), want: notify.ErrNoMatchingSignature},
		{name: "forged with another secret", h: func(h http.Header) { h.Set(notify.HeaderSignature, forged) }, want: notify.ErrNoMatchingSignature},
		{name: "verified with another secret", secret: other, want: notify.ErrNoMatchingSignature},
		{name: "id swapped", h: func(h http.Header) { h.Set(notify.HeaderID, "msg_other") }, want: notify.ErrNoMatchingSignature},
		{name: "timestamp changed", h: func(h http.Header) { h.Set(notify.HeaderTimestamp, strconv.Itoa(vectorTimestamp+1)) },
			now: now.Add(time.Second), want: notify.ErrNoMatchingSignature},
		{name: "replayed after tolerance", now: now.Add(5*time.Minute + time.Second), want: notify.ErrTimestamp},
		{name: "from the future", now: now.Add(-5*time.Minute - time.Second), want: notify.ErrTimestamp},
		{name: "missing id", h: func(h http.Header) { h.Del(notify.HeaderID) }, want: notify.ErrMissingHeaders},
		{name: "missing timestamp", h: func(h http.Header) { h.Del(notify.HeaderTimestamp) }, want: notify.ErrMissingHeaders},
		{name: "missing signature", h: func(h http.Header) { h.Del(notify.HeaderSignature) }, want: notify.ErrMissingHeaders},
		{name: "timestamp not a number", h: func(h http.Header) { h.Set(notify.HeaderTimestamp, "yesterday") }, want: notify.ErrMalformedHeaders},
		{name: "timestamp with sign", h: func(h http.Header) { h.Set(notify.HeaderTimestamp, "+1614265330") }, want: notify.ErrMalformedHeaders},
		{name: "timestamp with fraction", h: func(h http.Header) { h.Set(notify.HeaderTimestamp, "1614265330.0") }, want: notify.ErrMalformedHeaders},
		{name: "timestamp huge", h: func(h http.Header) { h.Set(notify.HeaderTimestamp, "99999999999999999999") }, want: notify.ErrMalformedHeaders},
		{name: "id with a dot", h: func(h http.Header) { h.Set(notify.HeaderID, "msg.1") }, want: notify.ErrMalformedHeaders},
		{name: "signature without version", h: func(h http.Header) { h.Set(notify.HeaderSignature, "g0hM9SsE+OTPJTGt") }, want: notify.ErrMalformedHeaders},
		{name: "only other schemes", h: func(h http.Header) { h.Set(notify.HeaderSignature, "v1a,abc v2,def") }, want: notify.ErrMalformedHeaders},
		{name: "empty v1 signature", h: func(h http.Header) { h.Set(notify.HeaderSignature, "v1,") }, want: notify.ErrNoMatchingSignature},
		{name: "too many signatures", h: func(h http.Header) {
			h.Set(notify.HeaderSignature, strings.Repeat("v1,AAAA ", 20)+vectorSignature)
		}, want: notify.ErrMalformedHeaders},
		{name: "secret not base64", secret: "whsec_***", want: notify.ErrBadSecret},
		{name: "empty secret", secret: "whsec_", want: notify.ErrBadSecret},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := vectorHeaders(vectorSignature)
			if tc.h != nil {
				tc.h(h)
			}
			secret, b, at := vectorSecret, body, now
			if tc.secret != "" {
				secret = tc.secret
			}
			if tc.body != nil {
				b = tc.body
			}
			if !tc.now.IsZero() {
				at = tc.now
			}
			err := notify.Verify(secret, h, b, 5*time.Minute, at)
			if tc.want == nil && err != nil {
				t.Fatalf("rejected: %v", err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	// A tolerance of zero still enforces the default window.
	if err := notify.Verify(vectorSecret, vectorHeaders(vectorSignature), body, 0, now.Add(time.Hour)); !errors.Is(err, notify.ErrTimestamp) {
		t.Fatalf("tolerance 0 disabled replay protection: %v", err)
	}
}

func TestGenerateSecret(t *testing.T) {
	a, b := notify.GenerateSecret(), notify.GenerateSecret()
	if a == b || !strings.HasPrefix(a, notify.SecretPrefix) {
		t.Fatalf("secrets %q %q", a, b)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(a, notify.SecretPrefix))
	if err != nil || len(key) < 24 || len(key) > 64 {
		t.Fatalf("secret key of %d bytes (%v); the spec asks for 24 to 64", len(key), err)
	}
}

// A subscription holding secrets must not print them, whatever the verb
// or logger.
func TestSecretsPrintRedacted(t *testing.T) {
	secret := notify.GenerateSecret()
	sub := notify.Subscription{ID: "s", SigningSecret: notify.Secret(secret), PreviousSecret: notify.Secret(secret)}
	key := strings.TrimPrefix(secret, notify.SecretPrefix)
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("sub", "sub", sub, "secret", sub.SigningSecret)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("sub", "sub", sub, "secret", sub.SigningSecret)
	for _, s := range []string{fmt.Sprint(sub), fmt.Sprintf("%+v", sub), fmt.Sprintf("%#v", sub), fmt.Sprintf("%v %q", sub.SigningSecret, sub.PreviousSecret), logged.String()} {
		if strings.Contains(s, key) {
			t.Fatalf("secret printed: %s", s)
		}
	}
}

func FuzzVerify(f *testing.F) {
	f.Add(vectorMsgID, strconv.Itoa(vectorTimestamp), vectorSignature, []byte(vectorPayload))
	f.Add("", "", "", []byte(nil))
	f.Add("msg.1", "-1", "v1,", []byte("{}"))
	f.Add("msg_x", "1614265330", "v1,AAAA v1a,BBBB ,, v1", []byte("\x00\xff"))
	f.Add("msg_x", "00000000001614265330", strings.Repeat("v1,x ", 40), []byte("{}"))
	now := time.Unix(vectorTimestamp, 0)
	f.Fuzz(func(t *testing.T, msgID, ts, sig string, body []byte) {
		h := http.Header{}
		h.Set(notify.HeaderID, msgID)
		h.Set(notify.HeaderTimestamp, ts)
		h.Set(notify.HeaderSignature, sig)
		_ = notify.Verify(vectorSecret, h, body, 5*time.Minute, now)
		_ = notify.Verify(sig, h, body, 5*time.Minute, now) // arbitrary secrets too

		// Whatever the body, our own signature verifies and a changed
		// body does not.
		if msgID == "" || strings.ContainsAny(msgID, ". \t\r\n") || len(msgID) > 256 || strings.TrimSpace(msgID) != msgID {
			return
		}
		good, err := notify.Sign(vectorSecret, msgID, now, body)
		if err != nil {
			t.Fatal(err)
		}
		h.Set(notify.HeaderTimestamp, strconv.Itoa(vectorTimestamp))
		h.Set(notify.HeaderSignature, good)
		if h.Get(notify.HeaderID) != msgID {
			return // not representable as a header value
		}
		if err := notify.Verify(vectorSecret, h, body, 5*time.Minute, now); err != nil {
			t.Fatalf("own signature rejected: %v", err)
		}
		if err := notify.Verify(vectorSecret, h, append(bytes.Clone(body), 'x'), 5*time.Minute, now); err == nil {
			t.Fatal("changed body accepted")
		}
	})
}
