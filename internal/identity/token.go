package identity

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"time"
)

// DeviceTokenPrefix marks device bearer tokens.
const DeviceTokenPrefix = "sdt_"

// deviceTokens mints and checks stateless device tokens: the device id and
// expiry under an HMAC. They need no table; the device's status is still
// read on every request, which is what makes revocation immediate.
type deviceTokens struct{ key []byte }

func (t deviceTokens) mint(deviceID string, expires time.Time) string {
	payload := deviceID + "." + strconv.FormatInt(expires.Unix(), 10)
	return DeviceTokenPrefix + base64.RawURLEncoding.EncodeToString([]byte(payload)) + "." +
		base64.RawURLEncoding.EncodeToString(t.mac(payload))
}

func (t deviceTokens) mac(payload string) []byte {
	m := hmac.New(sha256.New, t.key)
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// parse returns the device id of a genuine, unexpired token.
func (t deviceTokens) parse(token string, now time.Time) (deviceID string, ok bool) {
	rest, found := strings.CutPrefix(token, DeviceTokenPrefix)
	if !found || len(rest) > 200 {
		return "", false
	}
	p64, m64, found := strings.Cut(rest, ".")
	if !found {
		return "", false
	}
	payload, err1 := base64.RawURLEncoding.DecodeString(p64)
	mac, err2 := base64.RawURLEncoding.DecodeString(m64)
	if err1 != nil || err2 != nil || !hmac.Equal(mac, t.mac(string(payload))) {
		return "", false
	}
	id, exp, found := strings.Cut(string(payload), ".")
	sec, err := strconv.ParseInt(exp, 10, 64)
	if !found || err != nil || !now.Before(time.Unix(sec, 0)) {
		return "", false
	}
	return id, true
}
