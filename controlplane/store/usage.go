package store

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"
)

// Usage accounting (migration 00013): sandbox_usage holds intervals of each sandbox's life in one team.
// Apply opens one when a sandbox is created or moved to another team (closing the previous one), Delete
// closes it, in the same transaction as the write; Usage sums them over a calendar month.

// openUsage records, inside a sandbox write's transaction, that the sandbox is live in team from now on.
func (s *Store) openUsage(ctx context.Context, tx execer, o Object, rev, now int64) error {
	_, err := tx.ExecContext(ctx, s.q(`INSERT INTO sandbox_usage (org, sandbox, start_rev, routing_key, team, cluster, started_at, ended_at) VALUES (?, ?, ?, ?, ?, ?, ?, 0)`),
		o.Org, o.Name, rev, o.RoutingKey, o.Team, o.Cluster, now)
	if err != nil {
		return fmt.Errorf("usage of sandbox %s/%s: open: %w", o.Org, o.Name, err)
	}
	return nil
}

// closeUsage ends, inside a sandbox write's transaction, the sandbox's open interval (if any) at now.
func (s *Store) closeUsage(ctx context.Context, tx execer, org, name string, now int64) error {
	_, err := tx.ExecContext(ctx, s.q(`UPDATE sandbox_usage SET ended_at = ? WHERE org = ? AND sandbox = ? AND ended_at = 0`), now, org, name)
	if err != nil {
		return fmt.Errorf("usage of sandbox %s/%s: close: %w", org, name, err)
	}
	return nil
}

// UsageInterval is a period of a sandbox's life in one team; End is zero while it lasts.
type UsageInterval struct {
	Org, Sandbox, Team, Cluster string
	// RoutingKey tells incarnations of a name apart (a sandbox created again gets a new one).
	RoutingKey string
	Start, End time.Time
}

const usageCols = `org, sandbox, team, cluster, routing_key, started_at, ended_at`

func scanUsageInterval(sc scanner) (UsageInterval, error) {
	var u UsageInterval
	var start, end int64
	if err := sc.Scan(&u.Org, &u.Sandbox, &u.Team, &u.Cluster, &u.RoutingKey, &start, &end); err != nil {
		return UsageInterval{}, err
	}
	u.Start, u.End = fromNano(start), fromNano(end)
	return u, nil
}

// TeamUsage is one team's usage in a month ("" is the sandboxes in no team).
type TeamUsage struct {
	Team string
	// SandboxHours is the sum over the team's sandboxes of their hours live in the month (up to now).
	SandboxHours float64
	// Sandboxes is the number of distinct sandboxes live in the team at some time in the month.
	Sandboxes int
	// Peak is the largest number of the team's sandboxes live at once in the month.
	Peak int
	// Live is the number of the team's sandboxes live now.
	Live int64
	// MaxSandboxes is the team's concurrent-sandbox quota (0: only the org's applies).
	MaxSandboxes int64
	// Exists is false for "" and for a team deleted since.
	Exists bool
}

// UsageReport is an org's sandbox usage in a UTC calendar month, per team.
type UsageReport struct {
	Org string
	// From and To bound the month: [From, To).
	From, To time.Time
	// AsOf is when the report was made: open intervals count up to min(AsOf, To).
	AsOf time.Time
	// OrgMaxSandboxes is the org's concurrent-sandbox quota (0: unlimited); OrgLive its live sandboxes.
	OrgMaxSandboxes, OrgLive int64
	// Teams: "" first (always), then every team of the org and every deleted team with usage in the month, by name.
	Teams []TeamUsage
	// Total sums the teams (Sandboxes counts a sandbox moved between teams once; Peak is the org's).
	Total TeamUsage
}

// MonthRange returns the UTC calendar month containing t: [first day 00:00, first day of the next month).
func MonthRange(t time.Time) (time.Time, time.Time) {
	t = t.UTC()
	from := time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	return from, from.AddDate(0, 1, 0)
}

// Overlap returns how long [start, end) overlaps [from, to); a zero end is an interval still open at
// now (it counts up to now). Empty or inverted ranges overlap nothing.
func Overlap(start, end, from, to, now time.Time) time.Duration {
	if end.IsZero() {
		end = now
	}
	if start.Before(from) {
		start = from
	}
	if end.After(to) {
		end = to
	}
	if !end.After(start) {
		return 0
	}
	return end.Sub(start)
}

// peak returns the largest number of intervals that overlap at one instant, each interval clipped to
// [from, min(to, now)) (an interval that ends where another starts does not overlap it).
func peak(ivs []UsageInterval, from, to, now time.Time) int {
	type edge struct {
		at time.Time
		d  int
	}
	var edges []edge
	for _, iv := range ivs {
		if Overlap(iv.Start, iv.End, from, to, now) <= 0 {
			continue
		}
		start, end := iv.Start, iv.End
		if end.IsZero() || end.After(now) {
			end = now
		}
		start, end = maxTime(start, from), minTime(end, to)
		edges = append(edges, edge{start, 1}, edge{end, -1})
	}
	sort.Slice(edges, func(i, j int) bool {
		if !edges[i].at.Equal(edges[j].at) {
			return edges[i].at.Before(edges[j].at)
		}
		return edges[i].d < edges[j].d // ends before starts at the same instant
	})
	n, best := 0, 0
	for _, e := range edges {
		n += e.d
		best = max(best, n)
	}
	return best
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// Usage reports an org's sandbox usage in the UTC calendar month containing month: per team, the
// sandbox-hours (each interval's overlap with the month; open intervals up to now), the distinct
// sandboxes, the peak of concurrent ones, the live count and the quota. ErrNotFound for an unknown org.
func (s *Store) Usage(ctx context.Context, org string, month time.Time) (UsageReport, error) {
	from, to := MonthRange(month)
	now := s.now().UTC()
	r := UsageReport{Org: org, From: from, To: to, AsOf: now}
	o, err := s.getOrg(ctx, s.db, org)
	if err != nil {
		return UsageReport{}, fmt.Errorf("usage of org %s: %w", org, err)
	}
	r.OrgMaxSandboxes = o.MaxSandboxes
	ivs, err := scanRows(ctx, s, s.db, scanUsageInterval, `SELECT `+usageCols+` FROM sandbox_usage WHERE org = ? AND (ended_at = 0 OR ended_at > ?) AND started_at < ?`,
		org, from.UnixNano(), to.UnixNano())
	if err != nil {
		return UsageReport{}, fmt.Errorf("usage of org %s in %s: %w", org, from.Format("2006-01"), err)
	}
	teams, err := scanRows(ctx, s, s.db, scanTeam, `SELECT `+teamCols+` FROM teams WHERE org = ?`, org)
	if err != nil {
		return UsageReport{}, fmt.Errorf("usage of org %s: teams: %w", org, err)
	}
	type liveRow struct {
		team string
		n    int64
	}
	live, err := scanRows(ctx, s, s.db, func(sc scanner) (liveRow, error) {
		var l liveRow
		return l, sc.Scan(&l.team, &l.n)
	}, `SELECT team, COUNT(*) FROM objects WHERE kind = ? AND org = ? AND deleted_at = 0 GROUP BY team`, string(KindSandbox), org)
	if err != nil {
		return UsageReport{}, fmt.Errorf("usage of org %s: live sandboxes: %w", org, err)
	}

	by := map[string]*TeamUsage{"": {}}
	get := func(team string) *TeamUsage {
		if by[team] == nil {
			by[team] = &TeamUsage{Team: team}
		}
		return by[team]
	}
	for _, t := range teams {
		u := get(t.Name)
		u.MaxSandboxes, u.Exists = t.MaxSandboxes, true
	}
	for _, l := range live {
		get(l.team).Live = l.n
		r.OrgLive += l.n
	}
	perTeam := map[string][]UsageInterval{}
	seen := map[string]map[string]bool{}
	all := map[string]bool{}
	var kept []UsageInterval
	for _, iv := range ivs {
		d := Overlap(iv.Start, iv.End, from, to, now)
		if d <= 0 {
			continue
		}
		kept = append(kept, iv)
		u := get(iv.Team)
		u.SandboxHours += d.Hours()
		id := iv.Sandbox + "\x00" + iv.RoutingKey
		if seen[iv.Team] == nil {
			seen[iv.Team] = map[string]bool{}
		}
		seen[iv.Team][id], all[id] = true, true
		perTeam[iv.Team] = append(perTeam[iv.Team], iv)
	}
	for team, ids := range seen {
		by[team].Sandboxes = len(ids)
		by[team].Peak = peak(perTeam[team], from, to, now)
	}
	names := make([]string, 0, len(by))
	for n := range by {
		names = append(names, n)
	}
	slices.Sort(names) // "" sorts first
	for _, n := range names {
		u := *by[n]
		r.Teams = append(r.Teams, u)
		r.Total.SandboxHours += u.SandboxHours
		r.Total.Live += u.Live
	}
	r.Total.Sandboxes, r.Total.Peak = len(all), peak(kept, from, to, now)
	r.Total.MaxSandboxes, r.Total.Exists = r.OrgMaxSandboxes, true
	return r, nil
}
