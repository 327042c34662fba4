//go:build !linux

package routingkey

import "testing"

// loopCPU runs f in a b.Loop (CPU time is only reported on Linux).
func loopCPU(b *testing.B, f func()) {
	b.ReportAllocs()
	for b.Loop() {
		f()
	}
}
