package kafka_test

import (
	"syscall"
	"testing"
	"time"
)

// processCPU returns the CPU time (user and system) of the test process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuMeter starts measuring the process's CPU time; the function it returns reports it per op as
// cpu-ns/op. On a loaded shared machine wall-clock ns/op swings with the neighbours; the CPU the process
// spent per message does much less, so ratios of cpu-ns/op compare peers more steadily.
func cpuMeter(b *testing.B) func() {
	start := processCPU()
	return func() {
		if d := processCPU() - start; d > 0 && b.N > 0 {
			b.ReportMetric(float64(d.Nanoseconds())/float64(b.N), "cpu-ns/op")
		}
	}
}
