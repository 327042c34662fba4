package api

import "github.com/sandboxmesh/sandboxmesh/controlplane/store"

// afterWrite applies the effects of a committed write made through this
// replica's store: it is the one place that wakes agents' long polls, clears
// the preview caches and closes agent tunnels. New registers it with
// store.Watch, so no handler has to remember these steps. (Other replicas
// learn about a write by polling the database and from the caches' TTL.)
func (s *Server) afterWrite(c store.Change) {
	switch c.What {
	case store.ChangeObject:
		s.notify.broadcast()   // agents' long polls re-read their state
		s.targetCache.clear()  // preview endpoints may now resolve differently
		s.sessionCache.clear() // a preview session is bound to the object's identity
	case store.ChangeStatus:
		s.targetCache.clear() // resolved endpoint addresses may have changed
	case store.ChangeAPIKeyRevoked:
		s.credentialsChanged() // cached key checks and the key's preview sessions
	case store.ChangeClusterDeleted:
		s.hub.Disconnect(c.Org, c.Cluster)
	case store.ChangeClusterTokenDeleted:
		s.hub.DisconnectToken(c.Org, c.Cluster, c.Name)
	}
}
