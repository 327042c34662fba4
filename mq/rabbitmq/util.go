package rabbitmq

import (
	"crypto/rand"
	"encoding/hex"
	"net/url"
)

func randomHex() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// redactURL hides the password of an AMQP URL for errors and logs.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
