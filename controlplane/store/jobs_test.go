package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
)

func TestJobLifecycle(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		seed(t, s, "acme", 0, "c1")
		mk := func(name string) store.Job {
			t.Helper()
			j, err := s.CreateJob(ctx, store.Job{Org: "acme", Name: name, RunnerGroup: "rg", Cluster: "c1", Spec: []byte(`{"script":"#!/bin/sh"}`),
				Labels: map[string]string{"a": "b"}, Sandbox: "sb", RoutingKey: "rk"})
			if err != nil {
				t.Fatal(err)
			}
			return j
		}
		j1 := mk("j1")
		if j1.Phase != store.JobQueued || j1.Labels["a"] != "b" || j1.CreatedAt.IsZero() {
			t.Fatalf("created: %+v", j1)
		}
		if _, err := s.CreateJob(ctx, store.Job{Org: "acme", Name: "j1", RunnerGroup: "rg", Spec: []byte(`{}`)}); !errors.Is(err, store.ErrAlreadyExists) {
			t.Fatalf("duplicate: %v", err)
		}
		mk("j2")
		if _, err := s.ClaimJob(ctx, "acme", "other", "ns", "p1", 0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("claim of another group: %v", err)
		}
		c, err := s.ClaimJob(ctx, "acme", "rg", "ns", "p1", time.Hour)
		if err != nil || c.Name != "j1" || c.Phase != store.JobRunning || c.Pod != "p1" || c.Timeout != time.Hour || c.ExecutionCount != 1 {
			t.Fatalf("claim: %+v %v", c, err)
		}
		q, r, err := s.CountJobs(ctx, "acme", "rg")
		if err != nil || q != 1 || r != 1 {
			t.Fatalf("count: %d %d %v", q, r, err)
		}
		if _, err := s.AddJobEvents(ctx, "acme", "j1", 0, "ns", "p2", nil, 0); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("events of another pod: %v", err)
		}
		if _, err := s.AddJobEvents(ctx, "acme", "j1", 0, "", "", nil, 0); err != nil {
			t.Fatalf("events of whichever pod: %v", err)
		}
		if _, err := s.AddJobEvents(ctx, "acme", "j1", 0, "ns", "p1", []store.LogChunk{{Stream: "stdout", Data: []byte("a\n")}, {Stream: "stderr", Data: []byte{0, 0xff}}}, 0); err != nil {
			t.Fatal(err)
		}
		reason, err := s.AddJobEvents(ctx, "acme", "j1", 0, "ns", "p1", []store.LogChunk{{Stream: "stdout", Data: []byte("b\n")}}, 0)
		if err != nil || reason != "" {
			t.Fatalf("events: %q %v", reason, err)
		}
		out, err := s.ReadJobLogs(ctx, "acme", "j1", 0, "stdout", 0, 10)
		if err != nil || len(out) != 2 || string(out[0].Data) != "a\n" || out[1].Seq != 3 {
			t.Fatalf("stdout: %+v %v", out, err)
		}
		errOut, _ := s.ReadJobLogs(ctx, "acme", "j1", 0, "stderr", 0, 10)
		if len(errOut) != 1 || string(errOut[0].Data) != "\x00\xff" {
			t.Fatalf("stderr bytes: %+v", errOut)
		}
		if last, _ := s.LastJobLogs(ctx, "acme", "j1", 0, "stdout", 1); len(last) != 1 || last[0].Seq != 3 {
			t.Fatalf("last: %+v", last)
		}
		if _, err := s.CancelJob(ctx, "acme", "j1", "apiRequest"); err != nil {
			t.Fatal(err)
		}
		if reason, _ := s.AddJobEvents(ctx, "acme", "j1", 0, "ns", "p1", nil, 0); reason != "apiRequest" {
			t.Fatalf("cancel not answered: %q", reason)
		}
		if err := s.PutArtifact(ctx, store.Artifact{Org: "acme", Job: "j1", Space: store.SpaceUser, Path: "out/r.xml", StorageKey: "k1", Size: 3, SHA256: "x", Meta: map[string]string{"m": "v"}}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutArtifact(ctx, store.Artifact{Org: "acme", Job: "nope", Space: store.SpaceUser, Path: "p", StorageKey: "k"}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("artifact of a missing job: %v", err)
		}
		f, err := s.FinishJob(ctx, "acme", "j1", 0, "ns", "p1", 137, "killed", true)
		if err != nil || f.Phase != store.JobCanceled || f.CanceledBy != "apiRequest" || f.FinishedAt.IsZero() {
			t.Fatalf("finish: %+v %v", f, err)
		}
		if _, err := s.FinishJob(ctx, "acme", "j1", 0, "ns", "p1", 0, "", false); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("second finish: %v", err)
		}
		// the queued job is canceled at once
		if j, _ := s.CancelJob(ctx, "acme", "j2", "apiRequest"); j.Phase != store.JobCanceled || j.CanceledBy != "apiRequest" {
			t.Fatalf("cancel queued: %+v", j)
		}
		pg, err := s.ListJobs(ctx, "acme", store.JobFilter{Phase: store.JobCanceled}, store.PageRequest{Limit: 1})
		if err != nil || len(pg.Items) != 1 || pg.Items[0].Name != "j1" || pg.Continue == "" {
			t.Fatalf("list: %+v %v", pg, err)
		}
		first := pg.Continue
		pg, err = s.ListJobs(ctx, "acme", store.JobFilter{Phase: store.JobCanceled}, store.PageRequest{Limit: 1, Continue: first})
		if err != nil || len(pg.Items) != 1 || pg.Items[0].Name != "j2" {
			t.Fatalf("page 2: %+v %v", pg, err)
		}
		if _, err := s.ListJobs(ctx, "acme", store.JobFilter{}, store.PageRequest{Continue: first}); !errors.Is(err, store.ErrBadCursor) {
			t.Fatalf("cursor of another filter: %v", err)
		}
		keys, err := s.DeleteJob(ctx, "acme", "j1")
		if err != nil || len(keys) != 1 || keys[0] != "k1" {
			t.Fatalf("delete: %v %v", keys, err)
		}
		if out, _ := s.ReadJobLogs(ctx, "acme", "j1", 0, "stdout", 0, 10); len(out) != 0 {
			t.Fatal("logs survive the job")
		}
		if a, _ := s.ListArtifacts(ctx, "acme", "j1", 0, store.SpaceUser); len(a) != 0 {
			t.Fatal("artifacts survive the job")
		}
		if _, err := s.DeleteJob(ctx, "acme", "j1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second delete: %v", err)
		}
	})
}

func TestJobSweeper(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		seed(t, s, "acme", 0, "c1")
		for _, n := range []string{"lost", "slow", "restart"} {
			if _, err := s.CreateJob(ctx, store.Job{Org: "acme", Name: n, RunnerGroup: "rg", Spec: []byte(`{}`)}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.ClaimJob(ctx, "acme", "rg", "ns", "p-lost", 0); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ClaimJob(ctx, "acme", "rg", "ns", "p-slow", time.Nanosecond); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ClaimJob(ctx, "acme", "rg", "ns", "p-re", 0); err != nil {
			t.Fatal(err)
		}
		// a claim whose answer was lost goes back to the queue
		if _, err := s.CreateJob(ctx, store.Job{Org: "acme", Name: "lost-answer", RunnerGroup: "rg", Spec: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
		if j, err := s.ClaimJob(ctx, "acme", "rg", "ns", "p-x", 0); err != nil || j.Name != "lost-answer" {
			t.Fatalf("claim: %+v %v", j, err)
		}
		if err := s.ReleaseJob(ctx, "acme", "lost-answer", "ns", "p-x"); err != nil {
			t.Fatal(err)
		}
		if j, _ := s.GetJob(ctx, "acme", "lost-answer"); j.Phase != store.JobQueued || j.Pod != "" {
			t.Fatalf("released: %+v", j)
		}
		if err := s.ReleaseJob(ctx, "acme", "lost-answer", "ns", "p-x"); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("release of a queued job: %v", err)
		}
		if _, err := s.DeleteJob(ctx, "acme", "lost-answer"); err != nil {
			t.Fatal(err)
		}
		// the pod claims again: its running attempt fails
		if _, err := s.ClaimJob(ctx, "acme", "rg", "ns", "p-re", 0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("claim with nothing queued: %v", err)
		}
		if j, _ := s.GetJob(ctx, "acme", "restart"); j.Phase != store.JobFailed || j.Message == "" {
			t.Fatalf("restarted pod: %+v", j)
		}
		time.Sleep(600 * time.Millisecond) // "lost" is silent longer than the window below; "slow" reports now
		if _, err := s.AddJobEvents(ctx, "acme", "slow", 0, "ns", "p-slow", nil, 0); err != nil {
			t.Fatal(err)
		}
		ended, err := s.SweepJobs(ctx, 500*time.Millisecond, time.Hour)
		if err != nil || len(ended) != 1 || ended[0].Name != "lost" || ended[0].Message != "runner pod ns/p-lost stopped reporting (deleted or crashed)" {
			t.Fatalf("sweep: %+v %v", ended, err)
		}
		if j, _ := s.GetJob(ctx, "acme", "slow"); j.CancelReason != "timeout" || j.Phase != store.JobRunning {
			t.Fatalf("timeout not asked: %+v", j)
		}
		if _, err := s.AddJobEvents(ctx, "acme", "slow", 0, "ns", "p-slow", nil, 0); err != nil {
			t.Fatal(err)
		}
		ended, err = s.SweepJobs(ctx, time.Hour, 0)
		if err != nil || len(ended) != 1 || ended[0].Phase != store.JobCanceled || ended[0].CanceledBy != "timeout" {
			t.Fatalf("sweep timeout: %+v %v", ended, err)
		}
	})
}

func TestJobLogCap(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		seed(t, s, "acme", 0, "c1")
		if _, err := s.CreateJob(ctx, store.Job{Org: "acme", Name: "chatty", RunnerGroup: "rg", Spec: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ClaimJob(ctx, "acme", "rg", "ns", "p", 0); err != nil {
			t.Fatal(err)
		}
		send := func(data string) error {
			_, err := s.AddJobEvents(ctx, "acme", "chatty", 0, "ns", "p", []store.LogChunk{{Stream: "stdout", Data: []byte(data)}}, 10)
			return err
		}
		if err := send("12345678"); err != nil {
			t.Fatal(err)
		}
		if err := send("abcdef"); !errors.Is(err, store.ErrLogCapReached) {
			t.Fatalf("over the cap: %v", err)
		}
		if err := send("more"); !errors.Is(err, store.ErrLogCapReached) {
			t.Fatalf("further over the cap: %v", err)
		}
		if _, err := s.AddJobEvents(ctx, "acme", "chatty", 0, "ns", "p", nil, 10); err != nil {
			t.Fatalf("heartbeat over the cap: %v", err)
		}
		out, _ := s.ReadJobLogs(ctx, "acme", "chatty", 0, "stdout", 0, 10)
		marker, _ := s.ReadJobLogs(ctx, "acme", "chatty", 0, "stderr", 0, 10)
		if len(out) != 1 || string(out[0].Data) != "12345678" || len(marker) != 1 || marker[0].Seq != 2 {
			t.Fatalf("kept: %+v marker %+v", out, marker)
		}
	})
}
