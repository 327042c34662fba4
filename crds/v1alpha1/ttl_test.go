package v1alpha1

import (
	"testing"
	"time"
)

func TestParseTTL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"90m", 90 * time.Minute, true},
		{"2h", 2 * time.Hour, true},
		{"1d", 24 * time.Hour, true},
		{"2w", 14 * 24 * time.Hour, true},
		{"0m", 0, true},
		{"", 0, false},
		{"h", 0, false},
		{"2s", 0, false},
		{"-1h", 0, false},
		{"x1h", 0, false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseTTL(tc.in)
			if (err == nil) != tc.ok || got != tc.want {
				t.Fatalf("ParseTTL(%q) = %v, %v", tc.in, got, err)
			}
		})
	}
}

func TestTTLDeadline(t *testing.T) {
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	updated := created.Add(time.Hour)
	for _, tc := range []struct {
		name string
		ttl  *TTL
		dflt TTLOffset
		want time.Time // zero: nil
	}{
		{"no ttl", nil, TTLFromCreatedAt, time.Time{}},
		{"default createdAt", &TTL{Duration: "2h"}, TTLFromCreatedAt, created.Add(2 * time.Hour)},
		{"updatedAt", &TTL{Duration: "2h", OffsetFrom: TTLFromUpdatedAt}, TTLFromCreatedAt, updated.Add(2 * time.Hour)},
		{"explicit createdAt on a route group", &TTL{Duration: "1d", OffsetFrom: TTLFromCreatedAt}, TTLFromNoMatchedSandboxes, created.Add(24 * time.Hour)},
		{"route group default", &TTL{Duration: "1d"}, TTLFromNoMatchedSandboxes, time.Time{}},
		{"noMatchedSandboxes", &TTL{Duration: "1d", OffsetFrom: TTLFromNoMatchedSandboxes}, TTLFromCreatedAt, time.Time{}},
		{"bad duration", &TTL{Duration: "soon"}, TTLFromCreatedAt, time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.ttl.Deadline(created, updated, tc.dflt)
			if (got == nil) != tc.want.IsZero() || (got != nil && !got.Equal(tc.want)) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}
