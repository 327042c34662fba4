package api

import (
	"errors"
	"testing"
	"time"
)

// FuzzParseMonth: a month parses exactly when it is YYYY-MM from 1970-01 to 2200-12, to the first
// instant of that UTC month, which formats back to the input; anything else is errMonth.
func FuzzParseMonth(f *testing.F) {
	for _, s := range []string{"2026-12", "1970-01", "2200-12", "2201-01", "1969-12", "2026-13", "2026-00", "2026-1", "26-12", "", "2026-12-01", "+026-12", "2026-12\n", " 2026-12", "２０２６-12", "0000-01", "9999-12"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := parseMonth(s)
		if err != nil {
			if !errors.Is(err, errMonth) {
				t.Fatalf("%q: %v is not errMonth", s, err)
			}
			return
		}
		if m.Format(monthLayout) != s || m.Location() != time.UTC || m.Day() != 1 || m.Hour() != 0 || m.Year() < 1970 || m.Year() > 2200 {
			t.Fatalf("%q parsed to %v", s, m)
		}
		if m.AddDate(0, 1, 0).UnixNano() <= m.UnixNano() {
			t.Fatalf("%q: the month's end %v overflows nanoseconds", s, m.AddDate(0, 1, 0))
		}
	})
}
