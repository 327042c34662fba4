package store

import (
	"testing"
	"time"
)

// TestOverlap: an interval's share of a month, at the boundaries (touching ends count nothing), with open
// intervals counted up to now, and inverted or empty ranges.
func TestOverlap(t *testing.T) {
	from, to := MonthRange(time.Date(2026, 12, 15, 0, 0, 0, 0, time.FixedZone("x", 5*3600)))
	if !from.Equal(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)) || !to.Equal(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("month %v–%v", from, to)
	}
	if f, _ := MonthRange(time.Date(2026, 12, 1, 2, 0, 0, 0, time.FixedZone("x", 5*3600))); f.Month() != time.November {
		t.Fatalf("Dec 1 02:00 +05:00 is in November UTC, got %v", f)
	}
	h := func(d, hh int) time.Time { return time.Date(2026, 12, d, hh, 0, 0, 0, time.UTC) }
	var zero time.Time
	end := h(31, 0).Add(24 * time.Hour) // = to
	for _, c := range []struct {
		name            string
		start, end, now time.Time
		want            time.Duration
	}{
		{"inside", h(2, 0), h(2, 3), end, 3 * time.Hour},
		{"starts before", h(1, 0).Add(-5 * time.Hour), h(1, 2), end, 2 * time.Hour},
		{"ends after", h(31, 22), end.Add(5 * time.Hour), end, 2 * time.Hour},
		{"spans the month", from.Add(-time.Hour), to.Add(time.Hour), to, 31 * 24 * time.Hour},
		{"ends at the start", from.Add(-time.Hour), from, to, 0},
		{"starts at the end", to, to.Add(time.Hour), to, 0},
		{"before", from.Add(-3 * time.Hour), from.Add(-time.Hour), to, 0},
		{"after", to.Add(time.Hour), to.Add(2 * time.Hour), to, 0},
		{"one nanosecond", from, from.Add(1), to, 1},
		{"open, now in the month", h(2, 0), zero, h(3, 0), 24 * time.Hour},
		{"open, now after the month", h(31, 0), zero, to.Add(48 * time.Hour), 24 * time.Hour},
		{"open, now before the month", from.Add(-time.Hour), zero, from.Add(-time.Minute), 0},
		{"open, started after now (clock skew)", h(5, 0), zero, h(4, 0), 0},
		{"inverted", h(3, 0), h(2, 0), to, 0},
		{"empty", h(3, 0), h(3, 0), to, 0},
	} {
		if got := Overlap(c.start, c.end, from, to, c.now); got != c.want {
			t.Errorf("%s: Overlap = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestPeak: concurrent intervals in a month; one ending where another starts does not overlap it, and
// parts outside the month or after now do not count.
func TestPeak(t *testing.T) {
	from, to := MonthRange(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	h := func(hh int) time.Time { return from.Add(time.Duration(hh) * time.Hour) }
	iv := func(a, b time.Time) UsageInterval { return UsageInterval{Start: a, End: b} }
	for _, c := range []struct {
		name string
		ivs  []UsageInterval
		now  time.Time
		want int
	}{
		{"none", nil, to, 0},
		{"back to back", []UsageInterval{iv(h(0), h(1)), iv(h(1), h(2)), iv(h(2), h(3))}, to, 1},
		{"nested", []UsageInterval{iv(h(0), h(10)), iv(h(1), h(5)), iv(h(2), h(3)), iv(h(4), h(6))}, to, 3},
		{"open ones", []UsageInterval{iv(h(0), time.Time{}), iv(h(1), time.Time{})}, h(2), 2},
		{"open after now", []UsageInterval{iv(h(0), h(1)), iv(h(3), time.Time{})}, h(2), 1},
		{"before the month", []UsageInterval{iv(h(-5), h(-1)), iv(h(-4), h(-2)), iv(h(1), h(2))}, to, 1},
	} {
		if got := peak(c.ivs, from, to, c.now); got != c.want {
			t.Errorf("%s: peak = %d, want %d", c.name, got, c.want)
		}
	}
}
