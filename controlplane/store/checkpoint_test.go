package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store/storetest"
)

// TestSQLiteCheckpointsInTheBackground: the store's connections leave checkpoints to its background loop
// (their own start only past 10,000 pages), and the loop copies what was written into the database.
func TestSQLiteCheckpointsInTheBackground(t *testing.T) {
	s := storetest.Open(t, store.DriverSQLite)
	ctx := context.Background()
	var pages int
	if err := s.DB().QueryRowContext(ctx, `PRAGMA wal_autocheckpoint`).Scan(&pages); err != nil || pages != 10000 {
		t.Fatalf("wal_autocheckpoint = %d (%v), want 10000", pages, err)
	}
	if _, err := s.CreateOrg(ctx, "acme", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateCluster(ctx, "acme", "c1"); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if _, _, err := apply(s, "acme", "sb"+string(rune('a'+i)), "c1", `{}`); err != nil {
			t.Fatal(err)
		}
	}
	before := s.Checkpoints()
	deadline := time.Now().Add(10 * time.Second)
	for s.Checkpoints() < before+2 { // one that may have started before the writes, one after
		if time.Now().After(deadline) {
			t.Fatalf("no background checkpoint in 10 s (%d)", s.Checkpoints())
		}
		time.Sleep(50 * time.Millisecond)
	}
	var busy, log, done int
	if err := s.DB().QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &log, &done); err != nil {
		t.Fatal(err)
	}
	if busy != 0 || done != log {
		t.Errorf("after the loop's checkpoints: busy %d, %d of %d log frames in the database", busy, done, log)
	}
}
