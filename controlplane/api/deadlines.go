package api

import (
	"net/http"
	"time"
)

// Connection deadlines. The HTTP server (cmd/controlplane) sets a
// ReadTimeout, which bounds reading a request's header and body (a body sent
// at one byte a second is cut off; net/http lifts it once the body has been
// read, so it never cuts a long answer), and an IdleTimeout for keep-alive
// connections. Every API route gets a write deadline of Config.WriteTimeout
// (writeDeadline); the agent's long poll moves it to the poll's wait plus
// longPollSlack. WebSocket tunnels (agent tunnel, replica dials) lose every
// deadline when net/http hands the connection over (yamux keep-alives detect
// dead peers), and preview requests do not pass the API router, so their
// responses may stream as long as the upstream sends.

// longPollSlack is added to a long poll's wait for its write deadline.
const longPollSlack = 30 * time.Second

// setWriteDeadline sets the connection's write deadline to t.
func setWriteDeadline(w http.ResponseWriter, t time.Time) {
	_ = http.NewResponseController(w).SetWriteDeadline(t)
}
