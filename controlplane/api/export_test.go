package api

import "time"

// SetTunnelLease shortens the tunnel claim lease of s (renewed every third of it).
func SetTunnelLease(s *Server, d time.Duration) { s.tunnelLease = d }

// RouteAction is routeAction, for the role table's tests.
var RouteAction = routeAction
