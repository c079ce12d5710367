package wake

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Broker says how to reach and log in to the MQTT broker. The server's
// publisher and the agent's subscriber share it, so both accept the same
// URLs and TLS files. Each field maps to one command-line flag, except
// Password, which is never a flag (flags show in ps): it comes from an
// environment variable or PasswordFile through LoadPassword.
type Broker struct {
	// URL is tcp://host:port or mqtt://host:port (plain, default port
	// 1883), or ssl://, tls:// or mqtts://host:port (TLS, default port
	// 8883). Empty turns MQTT off.
	URL string
	// Username logs in to the broker; empty sends none.
	Username string
	// PasswordFile holds the password (a trailing newline is ignored).
	PasswordFile string
	// Password is filled by LoadPassword.
	Password string `json:"-" yaml:"-"`
	// CAFile is a PEM bundle that verifies the broker's certificate; empty
	// means the system's roots. TLS URLs only.
	CAFile string
	// CertFile and KeyFile are an optional PEM client certificate and
	// key, for brokers that authenticate clients by certificate.
	CertFile string
	KeyFile  string
	// ConnectTimeout bounds one connection attempt (default 10 s).
	ConnectTimeout time.Duration
	// KeepAlive is the MQTT keep-alive: how soon a dead connection is
	// noticed, at the cost of one small packet per interval (default
	// 60 s).
	KeepAlive time.Duration
}

// Enabled reports whether MQTT is configured at all.
func (b Broker) Enabled() bool { return b.URL != "" }

// LoadPassword fills Password from the environment variable env (getenv
// is os.Getenv in production) or else from PasswordFile, unless it is
// already set.
func (b *Broker) LoadPassword(env string, getenv func(string) string) error {
	if b.Password != "" {
		return nil
	}
	if v := getenv(env); v != "" {
		b.Password = v
		return nil
	}
	if b.PasswordFile != "" {
		raw, err := os.ReadFile(b.PasswordFile)
		if err != nil {
			return fmt.Errorf("wake: reading the MQTT password file: %w", err)
		}
		b.Password = strings.TrimRight(string(raw), "\r\n")
		if b.Password == "" {
			return fmt.Errorf("wake: the MQTT password file %s is empty", b.PasswordFile)
		}
	}
	return nil
}

func (b Broker) withDefaults() Broker {
	if b.ConnectTimeout == 0 {
		b.ConnectTimeout = 10 * time.Second
	}
	if b.KeepAlive == 0 {
		b.KeepAlive = time.Minute
	}
	return b
}

// brokerURL checks the URL and fills in the default port.
func (b Broker) brokerURL() (u *url.URL, useTLS bool, err error) {
	u, err = url.Parse(b.URL)
	if err != nil {
		return nil, false, fmt.Errorf("wake: MQTT URL %q: %v", b.URL, err)
	}
	port := "1883"
	switch u.Scheme {
	case "tcp", "mqtt":
	case "ssl", "tls", "mqtts":
		useTLS, port = true, "8883"
	default:
		return nil, false, fmt.Errorf("wake: MQTT URL %q: the scheme must be tcp, mqtt, ssl, tls or mqtts", b.URL)
	}
	if u.Hostname() == "" {
		return nil, false, fmt.Errorf("wake: MQTT URL %q has no host; write e.g. mqtts://broker.example.com:8883", b.URL)
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return nil, false, fmt.Errorf("wake: MQTT URL %q: give only scheme, host and port (credentials go in the username flag and the password file)", redact(u))
	}
	if u.Port() == "" {
		u.Host = net.JoinHostPort(u.Hostname(), port)
	}
	u.Path = ""
	return u, useTLS, nil
}

// redact hides a password someone put into the URL.
func redact(u *url.URL) string {
	if u.User == nil {
		return u.String()
	}
	return u.Redacted()
}

// tlsConfig builds the client's TLS settings from the files.
func (b Broker) tlsConfig() (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if b.CAFile != "" {
		pem, err := os.ReadFile(b.CAFile)
		if err != nil {
			return nil, fmt.Errorf("wake: reading the MQTT CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("wake: the MQTT CA file %s holds no PEM certificate", b.CAFile)
		}
		conf.RootCAs = pool
	}
	if (b.CertFile == "") != (b.KeyFile == "") {
		return nil, errors.New("wake: an MQTT client certificate needs both the certificate file and the key file")
	}
	if b.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(b.CertFile, b.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("wake: loading the MQTT client certificate: %w", err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	return conf, nil
}

// ClientOptions validates b and returns paho options for clientID with
// everything but the session behaviour and handlers, which callers set:
// URL, credentials, TLS, timeouts and keep-alive, MQTT 3.1.1.
func (b Broker) ClientOptions(clientID string) (*mqtt.ClientOptions, error) {
	b = b.withDefaults()
	u, useTLS, err := b.brokerURL()
	if err != nil {
		return nil, err
	}
	if clientID == "" || len(clientID) > 65535 {
		return nil, errors.New("wake: the MQTT client id must be 1 to 65535 bytes")
	}
	if b.ConnectTimeout < 0 || b.KeepAlive < time.Second {
		return nil, fmt.Errorf("wake: MQTT connect timeout %s / keep-alive %s: must be positive (keep-alive at least 1s)", b.ConnectTimeout, b.KeepAlive)
	}
	if b.Password != "" && b.Username == "" {
		return nil, errors.New("wake: an MQTT password is set but no username")
	}
	opts := mqtt.NewClientOptions().
		AddBroker(u.String()).
		SetClientID(clientID).
		SetProtocolVersion(4).
		SetConnectTimeout(b.ConnectTimeout).
		SetKeepAlive(b.KeepAlive).
		SetPingTimeout(min(b.KeepAlive, 10*time.Second)).
		SetWriteTimeout(b.ConnectTimeout)
	if b.Username != "" {
		opts.SetUsername(b.Username).SetPassword(b.Password)
	}
	if useTLS {
		conf, err := b.tlsConfig()
		if err != nil {
			return nil, err
		}
		opts.SetTLSConfig(conf)
	} else if b.CAFile != "" || b.CertFile != "" || b.KeyFile != "" {
		return nil, fmt.Errorf("wake: TLS files are set but the MQTT URL %q is plain %s://; use mqtts://", b.URL, u.Scheme)
	}
	return opts, nil
}
