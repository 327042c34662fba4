// Package jobs owns the control plane's side of jobs (docs/jobs.md): runner
// groups (desired objects of kind runnergroup that the cluster's agent
// turns into runner pods), the job queue and the attempts' life cycle
// (submit, claim with long-poll wake-up, events and heartbeats with cancel
// answers, finish, cancel, delete), the sweeper that fails attempts whose
// runner stopped reporting and enforces jobTimeout, runner-token minting and
// verification (HMAC of the runner group's identity; nothing stored), the
// jobs' logs (stored in chunks, read with resumable opaque cursors) and the
// metadata of their artifacts. The bytes of artifacts go to an
// artifacts.Store (controlplane/jobs/artifacts). The REST
// handlers in controlplane/api are thin wrappers around Service.
package jobs
