package diff

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Kind is the kind of workload a capture point belongs to.
type Kind string

// Kinds of capture points.
const (
	KindDeployment Kind = "Deployment"
	KindRollout    Kind = "Rollout"
	KindJob        Kind = "Job"
	KindPreview    Kind = "Preview"
)

// Direction says whether a capture point recorded a request the workload
// served (Inbound) or one it made (Outbound).
type Direction string

// Directions of capture points.
const (
	Inbound  Direction = "Inbound"
	Outbound Direction = "Outbound"
)

// CapturePoint is where a capture was recorded.
type CapturePoint struct {
	Kind      Kind      `json:"kind"`
	Namespace string    `json:"namespace"`
	Name      string    `json:"name"`
	Direction Direction `json:"direction"`
}

// String returns kind/namespace/name/direction.
func (p CapturePoint) String() string {
	return string(p.Kind) + "/" + p.Namespace + "/" + p.Name + "/" + string(p.Direction)
}

// Request is the recorded request of a capture. Header names are compared
// case-insensitively. Body is encoded as base64 in JSON.
type Request struct {
	Method        string              `json:"method"`
	Path          string              `json:"path"`
	Query         string              `json:"query,omitempty"`
	Headers       map[string][]string `json:"headers,omitempty"`
	Body          []byte              `json:"body,omitempty"`
	BodyTruncated bool                `json:"bodyTruncated,omitempty"`
}

// Response is the recorded response of a capture.
type Response struct {
	Status        int                 `json:"status"`
	Headers       map[string][]string `json:"headers,omitempty"`
	Body          []byte              `json:"body,omitempty"`
	BodyTruncated bool                `json:"bodyTruncated,omitempty"`
}

// Capture is one request/response pair recorded at a capture point during
// one run of a test.
type Capture struct {
	ID    string       `json:"id"`
	Point CapturePoint `json:"point"`
	// Name is the script's name for the request (http.get(..., name=)), or
	// empty.
	Name     string        `json:"name,omitempty"`
	Seq      int64         `json:"seq"`
	Request  Request       `json:"request"`
	Response Response      `json:"response"`
	Duration time.Duration `json:"duration"`
}

// ErrInvalidCapture is wrapped by [Capture.Validate].
var ErrInvalidCapture = errors.New("invalid capture")

// Validate checks the fields a capture point must fill; the error names
// the first bad field by its JSON path.
func (c *Capture) Validate() error {
	bad := func(path, msg string) error { return fmt.Errorf("%w: %s: %s", ErrInvalidCapture, path, msg) }
	switch {
	case c.ID == "":
		return bad("id", "required")
	case c.Point.Kind != KindDeployment && c.Point.Kind != KindRollout && c.Point.Kind != KindJob && c.Point.Kind != KindPreview:
		return bad("point.kind", fmt.Sprintf("%q is not Deployment, Rollout, Job or Preview", c.Point.Kind))
	case c.Point.Namespace == "":
		return bad("point.namespace", "required")
	case c.Point.Name == "":
		return bad("point.name", "required")
	case c.Point.Direction != Inbound && c.Point.Direction != Outbound:
		return bad("point.direction", fmt.Sprintf("%q is not Inbound or Outbound", c.Point.Direction))
	case c.Request.Method == "":
		return bad("request.method", "required")
	case !strings.HasPrefix(c.Request.Path, "/"):
		return bad("request.path", fmt.Sprintf("%q does not start with /", c.Request.Path))
	case c.Response.Status != 0 && (c.Response.Status < 100 || c.Response.Status > 999):
		return bad("response.status", fmt.Sprintf("%d is not an HTTP status (0 when no response)", c.Response.Status))
	case c.Seq < 0:
		return bad("seq", "negative")
	case c.Duration < 0:
		return bad("duration", "negative")
	}
	return nil
}
