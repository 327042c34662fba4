// Package smarttests holds the example smart tests (Starlark .star files run by `sandboxmesh-runner
// smarttest`, package smarttest/executor) for hotrod-lite; its test runs them against the app started in
// process, with a fork of route that serves routing key k1 behind a routing proxy, as a sandbox would.
package smarttests
