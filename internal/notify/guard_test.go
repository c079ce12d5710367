package notify

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/steward-iot/steward/internal/problem"
)

func TestBlockedAddr(t *testing.T) {
	blocked := []string{
		"127.0.0.1", "127.8.9.10", "::1", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
		"169.254.169.254", "fe80::1", "fc00::1", "fd12:3456::1", "0.0.0.0", "::", "0.1.2.3", "100.64.0.1",
		"::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe", "64:ff9b::7f00:1",
		"224.0.0.1", "ff02::1", "255.255.255.255", "198.18.0.1", "fec0::1",
	}
	for _, s := range blocked {
		if blockedAddr(netip.MustParseAddr(s)) == "" {
			t.Errorf("%s allowed", s)
		}
	}
	allowed := []string{"8.8.8.8", "1.1.1.1", "93.184.215.14", "203.0.113.10", "172.32.0.1", "2606:4700:4700::1111",
		"::ffff:8.8.8.8", "64:ff9b::808:808"}
	for _, s := range allowed {
		if why := blockedAddr(netip.MustParseAddr(s)); why != "" {
			t.Errorf("%s blocked: %s", s, why)
		}
	}
}

func TestDialControl(t *testing.T) {
	for _, tc := range []struct {
		network, addr string
		ok            bool
	}{
		{"tcp4", "8.8.8.8:443", true},
		{"tcp6", "[2606:4700:4700::1111]:443", true},
		{"tcp4", "127.0.0.1:443", false},
		{"tcp4", "169.254.169.254:80", false},
		{"tcp6", "[fe80::1%eth0]:443", false},
		{"tcp6", "[::ffff:10.0.0.1]:443", false},
		{"udp4", "8.8.8.8:53", false},
	} {
		err := dialControl(tc.network, tc.addr, nil)
		if (err == nil) != tc.ok {
			t.Errorf("dialControl(%s, %s) = %v", tc.network, tc.addr, err)
		}
	}
}

func TestCheckWebhookURL(t *testing.T) {
	strict := &Service{cfg: Config{}.withDefaults()}
	lab := &Service{cfg: Config{AllowInsecureURLs: true, AllowPrivateNetworks: true}.withDefaults()}
	httpOnly := &Service{cfg: Config{AllowInsecureURLs: true}.withDefaults()}
	ctx := context.Background()
	for _, tc := range []struct {
		svc *Service
		url string
		ok  bool
	}{
		{strict, "https://203.0.113.10/hooks/steward?x=1", true},
		{strict, "https://[2606:4700:4700::1111]:8443/h", true},
		{strict, "http://203.0.113.10/hook", false},     // http needs the lab flag
		{httpOnly, "http://203.0.113.10/hook", true},    // ... and then it is fine
		{httpOnly, "http://127.0.0.1:8080/hook", false}, // loopback
		{httpOnly, "http://localhost:8080/hook", false}, // a name resolving to loopback
		{httpOnly, "http://169.254.169.254/latest/meta-data/", false},
		{httpOnly, "http://10.0.0.7/", false},
		{httpOnly, "http://[::1]/", false},
		{httpOnly, "http://[::ffff:127.0.0.1]/", false},
		{httpOnly, "http://0.0.0.0:80/", false},
		{lab, "http://127.0.0.1:8080/hook", true},
		{lab, "http://localhost:8080/hook", true},
		{strict, "ftp://203.0.113.10/", false},
		{strict, "https://user:pw@203.0.113.10/", false},
		{strict, "https://203.0.113.10/#frag", false},
		{strict, "/relative", false},
		{strict, "https:///nohost", false},
		{strict, "", false},
		{strict, "https://203.0.113.10/" + strings.Repeat("a", MaxURLLength), false},
	} {
		_, err := tc.svc.checkWebhookURL(ctx, tc.url)
		if (err == nil) != tc.ok {
			t.Errorf("checkWebhookURL(%q) with %+v = %v", tc.url, tc.svc.cfg.AllowPrivateNetworks, err)
		}
		if err != nil && !problem.Is(err, problem.KindInvalid) {
			t.Errorf("checkWebhookURL(%q): %v is not an invalid-input error", tc.url, err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("zero config: %v", err)
	}
	good := Config{SMTP: SMTPConfig{Addr: "mail.example.com:587", From: "Steward <steward@example.com>", Username: "u", Password: "p"}}
	if err := good.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	for name, c := range map[string]Config{
		"timeout too short":        {Timeout: time.Millisecond},
		"too many attempts":        {MaxAttempts: 1000},
		"negative delay":           {Schedule: []time.Duration{0, -time.Second}},
		"batch too big":            {BatchSize: 100000},
		"negative workers":         {Workers: -1},
		"short retention":          {Retention: time.Minute},
		"smtp address":             {SMTP: SMTPConfig{Addr: "mail.example.com", From: "a@example.com"}},
		"smtp from":                {SMTP: SMTPConfig{Addr: "mail.example.com:25", From: "not an address"}},
		"smtp from without domain": {SMTP: SMTPConfig{Addr: "mail.example.com:25", From: "<steward>"}},
		"smtp user, no password":   {SMTP: SMTPConfig{Addr: "mail.example.com:25", From: "a@example.com", Username: "u"}},
		"from without address":     {SMTP: SMTPConfig{From: "a@example.com"}},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestLoadPassword(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	c := SMTPConfig{}
	if err := c.LoadPassword(env(map[string]string{PasswordEnv: "from-env"})); err != nil || c.Password != "from-env" {
		t.Fatalf("env: %q %v", c.Password, err)
	}
	file := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c = SMTPConfig{PasswordFile: file}
	if err := c.LoadPassword(env(nil)); err != nil || c.Password != "from-file" {
		t.Fatalf("file: %q %v", c.Password, err)
	}
	c = SMTPConfig{PasswordFile: file}
	if err := c.LoadPassword(env(map[string]string{PasswordEnv: "from-env"})); err != nil || c.Password != "from-env" {
		t.Fatalf("env wins over file: %q %v", c.Password, err)
	}
	c = SMTPConfig{PasswordFile: filepath.Join(t.TempDir(), "missing")}
	if err := c.LoadPassword(env(nil)); err == nil {
		t.Fatal("missing password file accepted")
	}
}

func TestBackoffFollowsScheduleWithJitter(t *testing.T) {
	s := &Service{cfg: Config{}.withDefaults()}
	for n := 1; n <= 10; n++ {
		want := DefaultSchedule[min(n, len(DefaultSchedule)-1)]
		for range 50 {
			got := s.backoff(n)
			if got < want*9/10 || got > want*11/10 {
				t.Fatalf("backoff(%d) = %s, want %s ±10%%", n, got, want)
			}
		}
	}
	if d := (&Service{cfg: Config{Schedule: []time.Duration{0, 0}}.withDefaults()}).backoff(1); d != 0 {
		t.Fatalf("zero delay jittered to %s", d)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":          0,
		"120":       2 * time.Minute,
		"-5":        0,
		"soon":      0,
		"999999999": maxRetryAfter,
		now.Add(time.Hour).Format(http.TimeFormat):  time.Hour,
		now.Add(-time.Hour).Format(http.TimeFormat): 0,
	} {
		if got := retryAfter(v, now); got != want {
			t.Errorf("retryAfter(%q) = %s, want %s", v, got, want)
		}
	}
}

func TestSanitize(t *testing.T) {
	s := sanitize("ok\x00\xff"+strings.Repeat("é", 600), 1024)
	if !utf8.ValidString(s) || strings.Contains(s, "\x00") || len(s) > 1024 {
		t.Fatalf("sanitize: %q", s)
	}
	if got := truncateUTF8("aé", 2); got != "a" {
		t.Fatalf("truncate split a character: %q", got)
	}
}

func TestValidType(t *testing.T) {
	for _, ok := range append([]string{"ping", "a.b_c.d2"}, EventTypes...) {
		if !validType(ok) {
			t.Errorf("%q rejected", ok)
		}
	}
	for _, bad := range []string{"", ".", "a..b", "A.b", "a.b.", "a-b", "a b", strings.Repeat("a", 101)} {
		if validType(bad) {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestErrBlockedIsFound(t *testing.T) {
	err := dialControl("tcp4", "10.0.0.1:443", nil)
	var b *errBlocked
	if !errors.As(err, &b) || !strings.Contains(b.Error(), "private") {
		t.Fatalf("dialControl error %v", err)
	}
}
