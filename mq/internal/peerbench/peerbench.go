// Package peerbench runs the consumer benchmarks of the mq packages: a selective consumer side by side with
// its peers (the plain client, the plain client with OTel extraction) in the same run, interleaved in
// alternating order, each round consuming b.N messages prepared before the timer starts, and reporting
// the process's CPU time per message beside the wall time. bench/mq/run.sh runs them and turns the rounds
// into per-pair ratios (bench/mq/pairs).
package peerbench

import (
	"os"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// EnvPairs names the environment variable giving the number of rounds of each peer (default DefaultPairs).
const EnvPairs = "SANDBOXMESH_MQBENCH_PAIRS"

// EnvPeers names the environment variable selecting peers by name (comma-separated; default all).
const EnvPeers = "SANDBOXMESH_MQBENCH_PEERS"

// DefaultPairs is the number of rounds of each peer when EnvPairs is not set.
const DefaultPairs = 10

// Timeout bounds one round's consumption.
const Timeout = 5 * time.Minute

// Peer is one side of the comparison.
type Peer struct {
	// Name is the sub-benchmark's name ("plain", "plain+otel", "selective").
	Name string
	// Prepare readies a round of n messages, untimed: fills the queue or topic and creates the consumer.
	// The start it returns begins consuming (timed) and must add 1 to count for every message the
	// consumer is done with (processed or skipped); the stop start returns ends the round (untimed).
	Prepare func(b *testing.B, n int) (start func(count *atomic.Int64) (stop func()))
}

// Pairs is the number of rounds of each peer: EnvPairs, or DefaultPairs.
func Pairs() int {
	if n, err := strconv.Atoi(os.Getenv(EnvPairs)); err == nil && n > 0 {
		return n
	}
	return DefaultPairs
}

// Run runs Pairs() rounds of every peer as sub-benchmarks named after them, in the given order in even
// rounds and reversed in odd ones (A B C, C B A, A B C, ...), so that a drift of the machine's load and the
// position in a round weigh on every peer alike. Run with -benchtime=<messages>x.
func Run(b *testing.B, peers ...Peer) {
	if sel := os.Getenv(EnvPeers); sel != "" {
		names := strings.Split(sel, ",")
		peers = slices.DeleteFunc(slices.Clone(peers), func(p Peer) bool { return !slices.Contains(names, p.Name) })
	}
	for i := range Pairs() {
		order := slices.Clone(peers)
		if i%2 == 1 {
			slices.Reverse(order)
		}
		for _, p := range order {
			b.Run(p.Name, func(b *testing.B) { round(b, p) })
		}
	}
}

func round(b *testing.B, p Peer) {
	start := p.Prepare(b, b.N)
	runtime.GC() // the garbage of the preparation is not the round's
	var count atomic.Int64
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	gc0 := gcCPU()
	b.ResetTimer()
	cpu0 := processCPU()
	stop := start(&count)
	deadline := time.Now().Add(Timeout)
	for count.Load() < int64(b.N) {
		if time.Now().After(deadline) {
			b.Fatalf("%s: %d of %d messages consumed within %s", p.Name, count.Load(), b.N, Timeout)
		}
		time.Sleep(200 * time.Microsecond)
	}
	b.StopTimer()
	cpu := processCPU() - cpu0
	runtime.ReadMemStats(&ms1)
	b.ReportMetric(float64(gcCPU()-gc0)/float64(b.N), "gc-cpu-ns/op")
	b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/float64(b.N), "alloc-B/op")
	b.ReportMetric(float64(ms1.NumGC-ms0.NumGC), "gcs")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	if stop != nil {
		stop()
	}
}

// gcCPU returns the CPU time the garbage collector spent so far, in nanoseconds (an estimate of the runtime's).
func gcCPU() float64 {
	s := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64 {
		return 0
	}
	return s[0].Value.Float64() * 1e9
}

// processCPU returns the CPU time (user and system) of the process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
