//go:build !unix

package cli

import "os/exec"

// detach does nothing here: the daemon shares the console.
func detach(*exec.Cmd) {}

// exitSignal is unknown here.
func exitSignal(*exec.ExitError) (int, bool) { return 0, false }

// lockDaemon does nothing here.
func lockDaemon(string) (func(), error) { return func() {}, nil }
