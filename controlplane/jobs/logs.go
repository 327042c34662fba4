package jobs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
)

// Log streaming limits.
const (
	// maxLogCursorLen bounds a cursor before it is decoded.
	maxLogCursorLen = 256
	// MaxTailLines bounds tailLines.
	MaxTailLines = 100000
	// logBatch is how many chunks one read returns.
	logBatch = 256
	// maxTailChunks bounds the chunks read backwards for tailLines.
	maxTailChunks = 20000
)

// ErrBadCursor means a log cursor is malformed or belongs to another stream.
var ErrBadCursor = errors.New("invalid log cursor")

// logCursor is the decoded form of a log cursor: the sequence number of the
// last chunk sent, and a digest of the stream it belongs to (org, job and
// its creation time, attempt, stream type).
type logCursor struct {
	V     int    `json:"v"`
	Scope string `json:"k"`
	Seq   int64  `json:"s"`
}

func logScope(j store.Job, stream string) string {
	h := sha256.Sum256([]byte(j.Org + "\x00" + j.Name + "\x00" + strconv.FormatInt(j.CreatedAt.UnixNano(), 10) + "\x00" + strconv.FormatInt(j.Attempt, 10) + "\x00" + stream))
	return base64.RawURLEncoding.EncodeToString(h[:9])
}

func encodeLogCursor(scope string, seq int64) string {
	b, _ := json.Marshal(logCursor{V: 1, Scope: scope, Seq: seq})
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeLogCursor parses a cursor and checks that it belongs to scope. An
// empty cursor is the start of the stream (seq 0).
func decodeLogCursor(tok, scope string) (int64, error) {
	if tok == "" {
		return 0, nil
	}
	if len(tok) > maxLogCursorLen {
		return 0, fmt.Errorf("%w: longer than %d bytes", ErrBadCursor, maxLogCursorLen)
	}
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return 0, fmt.Errorf("%w: not base64url", ErrBadCursor)
	}
	var c logCursor
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil || dec.More() {
		return 0, fmt.Errorf("%w: malformed", ErrBadCursor)
	}
	switch {
	case c.V != 1:
		return 0, fmt.Errorf("%w: unknown version %d", ErrBadCursor, c.V)
	case c.Scope != scope:
		return 0, fmt.Errorf("%w: issued for another job, attempt or stream type", ErrBadCursor)
	case c.Seq < 0:
		return 0, fmt.Errorf("%w: negative position", ErrBadCursor)
	}
	return c.Seq, nil
}

// LogReader reads one output stream of a job's attempt, waiting for more
// while the attempt runs.
type LogReader struct {
	s       *Service
	job     store.Job
	stream  string
	scope   string
	after   int64
	pending []apitypes.JobLogMessage
}

// OpenLogs opens stream (stdout or stderr; empty: stdout) of a job's
// attempt after cursor (empty: from the start, or the last tailLines lines
// when tailLines > 0). Bad parameters are *ValidationError; an unknown job
// or attempt store.ErrNotFound.
func (s *Service) OpenLogs(ctx context.Context, org, name string, attempt int64, stream, cursor string, tailLines int) (*LogReader, error) {
	if stream == "" {
		stream = apitypes.LogStreamStdout
	}
	if stream != apitypes.LogStreamStdout && stream != apitypes.LogStreamStderr {
		return nil, invalid("invalid log stream type", apitypes.FieldError{Path: "type", Message: fmt.Sprintf("%q: want stdout or stderr", stream)})
	}
	if tailLines < 0 || tailLines > MaxTailLines {
		return nil, invalid("invalid tailLines", apitypes.FieldError{Path: "tailLines", Message: fmt.Sprintf("want 0 to %d", MaxTailLines)})
	}
	j, err := s.st.GetJob(ctx, org, name)
	if err != nil {
		return nil, err
	}
	if attempt != j.Attempt {
		return nil, fmt.Errorf("job %s/%s attempt %d: %w", org, name, attempt, store.ErrNotFound)
	}
	r := &LogReader{s: s, job: j, stream: stream, scope: logScope(j, stream)}
	if r.after, err = decodeLogCursor(cursor, r.scope); err != nil {
		return nil, invalid(err.Error(), apitypes.FieldError{Path: "cursor", Message: "not a cursor of this log stream; start again without cursor"})
	}
	if cursor == "" && tailLines > 0 {
		if err := r.tail(ctx, tailLines); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// tail positions the reader at the start of the last n lines: the part of
// the first chunk concerned becomes a pending message.
func (r *LogReader) tail(ctx context.Context, n int) error {
	chunks, err := r.s.st.LastJobLogs(ctx, r.job.Org, r.job.Name, r.job.Attempt, r.stream, maxTailChunks)
	if err != nil {
		return err
	}
	if len(chunks) == 0 {
		return nil
	}
	lines, i := 0, 0
	for ; i < len(chunks); i++ { // newest first
		d := chunks[i].Data
		if i == 0 {
			d = bytes.TrimSuffix(d, []byte("\n"))
		}
		lines += bytes.Count(d, []byte("\n"))
		if lines >= n {
			break
		}
	}
	if i == len(chunks) {
		i--
	}
	var buf bytes.Buffer
	for k := i; k >= 0; k-- {
		buf.Write(chunks[k].Data)
	}
	text := buf.String()
	trimmed := strings.TrimSuffix(text, "\n")
	if idx := nthLastNewline(trimmed, n); idx >= 0 {
		text = text[idx+1:]
	}
	r.after = chunks[0].Seq
	r.pending = []apitypes.JobLogMessage{{Message: text, Cursor: encodeLogCursor(r.scope, r.after)}}
	return nil
}

// nthLastNewline returns the index of the n-th newline from the end of s, or -1.
func nthLastNewline(s string, n int) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '\n' {
			n--
			if n == 0 {
				return i
			}
		}
	}
	return -1
}

// Next returns the next messages, waiting while the attempt runs and has
// sent nothing new; eof is true (with no messages) once the attempt has
// finished and everything was returned. A deleted job is store.ErrNotFound.
func (r *LogReader) Next(ctx context.Context) ([]apitypes.JobLogMessage, bool, error) {
	if len(r.pending) > 0 {
		out := r.pending
		r.pending = nil
		return out, false, nil
	}
	tick := time.NewTicker(r.s.cfg.LogPoll)
	defer tick.Stop()
	key := r.job.Org + "/" + r.job.Name
	for {
		woken := r.s.logs.wait(key) // before reading, so no event slips through
		msgs, err := r.read(ctx)
		if err != nil || len(msgs) > 0 {
			return msgs, false, err
		}
		j, err := r.s.st.GetJob(ctx, r.job.Org, r.job.Name)
		if err != nil {
			return nil, false, err
		}
		if !j.CreatedAt.Equal(r.job.CreatedAt) {
			return nil, false, fmt.Errorf("job %s/%s: %w", r.job.Org, r.job.Name, store.ErrNotFound)
		}
		if j.Finished() { // chunks are written before the finish: one more read sees them all
			msgs, err := r.read(ctx)
			return msgs, len(msgs) == 0 && err == nil, err
		}
		select {
		case <-woken:
		case <-tick.C:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
}

func (r *LogReader) read(ctx context.Context) ([]apitypes.JobLogMessage, error) {
	chunks, err := r.s.st.ReadJobLogs(ctx, r.job.Org, r.job.Name, r.job.Attempt, r.stream, r.after, logBatch)
	if err != nil {
		return nil, err
	}
	out := make([]apitypes.JobLogMessage, 0, len(chunks))
	for _, c := range chunks {
		r.after = c.Seq
		out = append(out, apitypes.JobLogMessage{Message: string(c.Data), Cursor: encodeLogCursor(r.scope, c.Seq)})
	}
	return out, nil
}
