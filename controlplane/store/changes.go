package store

import "sync"

// Change is a committed write that has effects outside the database: agents'
// long polls to wake, caches to clear, tunnels to close. The store reports
// every such write to its watchers after the commit, so a caller (the API
// server) applies those effects in one place instead of after each write.
type Change struct {
	What ChangeKind
	Org  string
	// Cluster is set for cluster, cluster-token and object changes (the
	// object's cluster).
	Cluster string
	// Name is the object's name, or the ID of an API key or cluster token.
	Name string
	// Kind is the kind of a changed object (What == ChangeObject or ChangeStatus).
	Kind Kind
}

// ChangeKind says what a Change changed.
type ChangeKind int

// Kinds of changes.
const (
	// ChangeObject: a sandbox or route group was created, updated or deleted
	// (the desired state changed).
	ChangeObject ChangeKind = iota + 1
	// ChangeStatus: an agent reported the status of an object.
	ChangeStatus
	// ChangeAPIKeyRevoked: an API key was revoked.
	ChangeAPIKeyRevoked
	// ChangeClusterDeleted: a cluster (and its tokens) was deleted.
	ChangeClusterDeleted
	// ChangeClusterTokenDeleted: a cluster token was deleted.
	ChangeClusterTokenDeleted
	// ChangeJob: a job was submitted, claimed, canceled, finished or deleted
	// (Name is the job).
	ChangeJob
	// ChangeJobLogs: a job's runner sent output (Name is the job).
	ChangeJobLogs
)

// watchers holds the functions Watch registered.
type watchers struct {
	mu  sync.RWMutex
	fns []func(Change)
}

// Watch registers fn to be called, synchronously and after the commit, for
// every Change made through this Store (not through other processes sharing
// the database: they poll). fn must be quick and must not write to the store.
func (s *Store) Watch(fn func(Change)) {
	s.watch.mu.Lock()
	defer s.watch.mu.Unlock()
	s.watch.fns = append(s.watch.fns, fn)
}

// emit reports a committed change to the watchers.
func (s *Store) emit(c Change) {
	s.watch.mu.RLock()
	defer s.watch.mu.RUnlock()
	for _, fn := range s.watch.fns {
		fn(c)
	}
}
