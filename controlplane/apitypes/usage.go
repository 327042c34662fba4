package apitypes

// Usage is an org's sandbox usage in a UTC calendar month, per team
// (GET /api/v2/orgs/{org}/usage?month=YYYY-MM; docs/controlplane.md#usage).
type Usage struct {
	// Month is the month reported, YYYY-MM (UTC).
	Month string `json:"month"`
	// From and To bound the month, [from, to), RFC 3339.
	From string `json:"from"`
	To   string `json:"to"`
	// AsOf is when the report was made: sandboxes still live count up to then.
	AsOf string `json:"asOf"`
	// OrgQuota is the org's concurrent-sandbox quota and its live sandboxes now.
	OrgQuota Quota `json:"orgQuota"`
	// Teams: the sandboxes in no team (team "") first, then the org's teams and the teams deleted
	// since that had sandboxes in the month, by name.
	Teams []TeamUsage `json:"teams"`
	// Total sums the teams (a sandbox moved between teams counts once in sandboxes).
	Total TeamUsage `json:"total"`
}

// TeamUsage is a team's usage in a month.
type TeamUsage struct {
	// Team is the team's name; "" for the sandboxes in no team (and in Usage.Total).
	Team string `json:"team"`
	// SandboxHours sums, over the team's sandboxes, the hours each was live in the team in the month
	// (rounded to 0.001 h).
	SandboxHours float64 `json:"sandboxHours"`
	// Sandboxes is the number of distinct sandboxes live in the team at some time in the month (one
	// deleted and created again under its name counts twice).
	Sandboxes int `json:"sandboxes"`
	// PeakSandboxes is the most of them live at once in the month.
	PeakSandboxes int `json:"peakSandboxes"`
	// LiveSandboxes is the number of the team's sandboxes live now (what its quota counts).
	LiveSandboxes int64 `json:"liveSandboxes"`
	// MaxSandboxes is the team's concurrent-sandbox quota (0: only the org's applies; in Total, the org's).
	MaxSandboxes int64 `json:"maxSandboxes"`
	// Deleted marks a team deleted since (its usage stays).
	Deleted bool `json:"deleted,omitempty"`
}
