package api

import (
	"context"
	"errors"
	"time"

	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
)

// afterWrite applies the effects of a committed write, made through this
// replica's store or (Remote) through another replica's and read from the
// change feed by followChanges: it is the one place that wakes agents' long
// polls, clears the preview caches and closes agent tunnels. New registers
// it with store.Watch, so no handler has to remember these steps.
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

// followChanges follows the store's change feed until ctx ends, so that
// afterWrite (and every other watcher of the store) sees the writes of the
// other replicas sharing the database within a moment (store.Follow).
func (s *Server) followChanges(ctx context.Context) {
	err := s.st.Follow(ctx, store.FollowConfig{
		Logger:   s.log,
		Interval: s.cfg.PollInterval,
		OnChange: func(lag time.Duration) {
			s.metrics.feedChanges.Inc()
			s.metrics.feedLag.Observe(max(lag, 0).Seconds())
		},
		OnError: func(error) { s.metrics.feedErrors.Inc() },
	})
	if errors.Is(err, store.ErrFollowing) {
		// Another Server of this process follows the same Store: its
		// watchers (this Server's too) already get the other replicas' changes.
		s.log.DebugContext(ctx, "change feed followed by another server of this process")
	}
}
