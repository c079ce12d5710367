package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"strings"
	"time"
)

// sendEmail sends one delivery by SMTP. SMTP says itself what is worth
// retrying: 4xx replies are transient and retried on the schedule, 5xx
// are permanent and end the delivery; a relay that cannot be reached or
// times out is retried.
func (s *Service) sendEmail(ctx context.Context, d Delivery, at time.Time) outcome {
	if !s.cfg.SMTP.Enabled() {
		return outcome{err: "no SMTP relay is configured", permanent: true}
	}
	from, err := mail.ParseAddress(s.cfg.SMTP.From)
	if err != nil {
		return outcome{err: "bad SMTP from address: " + err.Error(), permanent: true}
	}
	msg, err := renderEmail(from, d, at)
	if err != nil {
		return outcome{err: err.Error(), permanent: true}
	}
	err = s.smtpSend(ctx, from.Address, d.Target, msg)
	var te *textproto.Error
	switch {
	case err == nil:
		return outcome{ok: true, statusCode: 250}
	case errors.As(err, &te):
		return outcome{statusCode: te.Code, err: fmt.Sprintf("SMTP %d %s", te.Code, te.Msg), response: te.Msg, permanent: te.Code >= 500}
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return outcome{err: fmt.Sprintf("SMTP relay gave no answer within %s", s.cfg.Timeout)}
	}
	return outcome{err: "SMTP: " + err.Error()}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// smtpSend runs one SMTP session within Config.Timeout: implicit TLS or
// STARTTLS when offered, AUTH PLAIN when a username is set (net/smtp
// refuses it without TLS, except to localhost), one recipient.
func (s *Service) smtpSend(ctx context.Context, from, to string, msg []byte) error {
	cfg := s.cfg.SMTP
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	tlsConfig := &tls.Config{ServerName: host, RootCAs: s.cfg.RootCAs, MinVersion: tls.VersionTLS12}
	if cfg.ImplicitTLS {
		tc := tls.Client(conn, tlsConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			return err
		}
		conn = tc
	}
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello(cfg.HelloName); err != nil {
		return err
	}
	if !cfg.ImplicitTLS {
		if ok, _ := c.Extension("STARTTLS"); ok {
			if err := c.StartTLS(tlsConfig); err != nil {
				return err
			}
		}
	}
	if cfg.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", cfg.Username, cfg.Password, host)); err != nil {
			return err
		}
	}
	if err := c.Mail(from); err != nil {
		return err
	}
	if err := c.Rcpt(to); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err // the relay's verdict on the message
	}
	_ = c.Quit() // the message is accepted; a failed goodbye changes nothing
	return nil
}

// renderEmail builds the RFC 5322 message: headers, then a plain-text
// body (quoted-printable, UTF-8) with the event type, time and data.
func renderEmail(from *mail.Address, d Delivery, at time.Time) ([]byte, error) {
	var p struct {
		Type      string          `json:"type"`
		Timestamp string          `json:"timestamp"`
		Data      json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(d.Payload, &p); err != nil {
		return nil, fmt.Errorf("stored payload is not JSON: %w", err)
	}
	var data bytes.Buffer
	if err := json.Indent(&data, p.Data, "", "  "); err != nil {
		return nil, fmt.Errorf("stored payload data is not JSON: %w", err)
	}
	subject := d.Subject
	if subject == "" {
		subject = "Steward: " + d.EventType
	}
	domain := "steward.invalid"
	if _, after, ok := strings.Cut(from.Address, "@"); ok && after != "" {
		domain = after
	}

	var b bytes.Buffer
	header := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	header("Date", at.Format(time.RFC1123Z))
	header("From", from.String())
	header("To", (&mail.Address{Address: d.Target}).String())
	header("Subject", mime.QEncoding.Encode("utf-8", subject))
	header("Message-ID", "<"+d.MessageID+"@"+domain+">")
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "quoted-printable")
	// RFC 3834: keep vacation responders from answering a robot.
	header("Auto-Submitted", "auto-generated")
	header("X-Steward-Event", d.EventType)
	b.WriteString("\r\n")

	var text strings.Builder
	text.WriteString(subject + "\n\n")
	fmt.Fprintf(&text, "Event:       %s\n", p.Type)
	fmt.Fprintf(&text, "Occurred at: %s\n", p.Timestamp)
	fmt.Fprintf(&text, "Message id:  %s\n\n", d.MessageID)
	text.WriteString("Details:\n")
	text.Write(data.Bytes())
	text.WriteString("\n\n-- \n")
	if d.SubscriptionID != "" {
		fmt.Fprintf(&text, "Sent by Steward because this address subscribes to these events (subscription %s).\n", d.SubscriptionID)
	} else {
		text.WriteString("Sent by Steward because you were named as a recipient of this notification.\n")
	}
	qp := quotedprintable.NewWriter(&b)
	if _, err := qp.Write([]byte(text.String())); err != nil {
		return nil, err
	}
	if err := qp.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
