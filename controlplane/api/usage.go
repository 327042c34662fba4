package api

import (
	"encoding/csv"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
)

// monthLayout is the format of the usage report's month parameter.
const monthLayout = "2006-01"

// errMonth is a month parameter that is not YYYY-MM in the years parseMonth accepts.
var errMonth = errors.New("month must be YYYY-MM (UTC), a year from 1970 to 2200")

// parseMonth parses a UTC calendar month, YYYY-MM: its first instant. The years are bounded so that
// every instant of the month is a Unix nanosecond count (as the store keeps times).
func parseMonth(s string) (time.Time, error) {
	t, err := time.Parse(monthLayout, s)
	if err != nil || t.Year() < 1970 || t.Year() > 2200 {
		return time.Time{}, fmt.Errorf("month %q: %w", s, errMonth)
	}
	return t, nil
}

func (s *Server) registerUsage(o string) {
	s.handle(http.MethodGet, o+"/usage", s.authUser, s.orgAccess, s.getUsage)
}

// getUsage answers an org's usage in a month (?month=YYYY-MM, default the current one) as JSON, or as
// CSV with ?format=csv or Accept: text/csv (a download: usage-{org}-{month}.csv).
func (s *Server) getUsage(c *gin.Context) {
	org := c.Param("org")
	month := time.Now().UTC()
	if m := c.Query("month"); m != "" {
		t, err := parseMonth(m)
		if err != nil {
			s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, err.Error(), apitypes.FieldError{Path: "month", Message: errMonth.Error()})
			return
		}
		month = t
	}
	format := c.Query("format")
	switch format {
	case "", "json", "csv":
	default:
		s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, fmt.Sprintf("format %q: want json or csv", format), apitypes.FieldError{Path: "format", Message: "json or csv (or send Accept: text/csv)"})
		return
	}
	if format == "" && strings.Contains(c.GetHeader("Accept"), "text/csv") {
		format = "csv"
	}
	r, err := s.st.Usage(c.Request.Context(), org, month)
	if err != nil {
		s.failErr(c, fmt.Sprintf("org %q", org), err)
		return
	}
	u := usageView(r)
	if format != "csv" {
		c.JSON(http.StatusOK, u)
		return
	}
	c.Header("Content-Type", "text/csv; charset=utf-8")
	c.Header("Content-Disposition", fmt.Sprintf(`attachment; filename="usage-%s-%s.csv"`, org, u.Month))
	c.Status(http.StatusOK)
	if err := writeUsageCSV(c.Writer, u); err != nil {
		s.log.ErrorContext(c.Request.Context(), "usage csv not written", "err", err, "org", org, "requestId", c.GetString(ctxRequestID))
	}
}

// usageCSVHeader is the CSV report's header row.
var usageCSVHeader = []string{"team", "month", "sandbox_hours", "sandboxes", "quota"}

// writeUsageCSV writes one row per team (team "" is the sandboxes in no team; its quota is empty).
func writeUsageCSV(w http.ResponseWriter, u apitypes.Usage) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(usageCSVHeader); err != nil {
		return fmt.Errorf("usage csv: %w", err)
	}
	for _, t := range u.Teams {
		quota := strconv.FormatInt(t.MaxSandboxes, 10)
		if t.Team == "" || t.Deleted {
			quota = ""
		}
		if err := cw.Write([]string{t.Team, u.Month, strconv.FormatFloat(t.SandboxHours, 'f', 3, 64), strconv.Itoa(t.Sandboxes), quota}); err != nil {
			return fmt.Errorf("usage csv: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("usage csv: %w", err)
	}
	return nil
}

func teamUsageView(t store.TeamUsage) apitypes.TeamUsage {
	return apitypes.TeamUsage{Team: t.Team, SandboxHours: math.Round(t.SandboxHours*1000) / 1000, Sandboxes: t.Sandboxes,
		PeakSandboxes: t.Peak, LiveSandboxes: t.Live, MaxSandboxes: t.MaxSandboxes, Deleted: t.Team != "" && !t.Exists}
}

func usageView(r store.UsageReport) apitypes.Usage {
	u := apitypes.Usage{Month: r.From.Format(monthLayout), From: ts(r.From), To: ts(r.To), AsOf: ts(r.AsOf),
		OrgQuota: apitypes.Quota{MaxSandboxes: r.OrgMaxSandboxes, Sandboxes: r.OrgLive}, Teams: []apitypes.TeamUsage{}, Total: teamUsageView(r.Total)}
	for _, t := range r.Teams {
		u.Teams = append(u.Teams, teamUsageView(t))
	}
	return u
}
