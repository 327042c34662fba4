package runner

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
)

// maxPending bounds the output kept while the control plane does not take
// it; more is dropped (and said so in the log stream).
const maxPending = 16 << 20

// maxPost bounds the output sent in one events request.
const maxPost = 1 << 20

// drainWait bounds the wait for the output pipes to close once the job's
// process group is gone (a process that left the group may hold them).
const drainWait = 2 * time.Second

// defaultPath is the job's PATH when the pod has none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// attempt is one run of one job attempt.
type attempt struct {
	r   *Runner
	job *apitypes.RunnerJob
	log *slog.Logger
	out outBuf

	postMu sync.Mutex // one events request at a time, output in order

	mu           sync.Mutex
	pid          int  // process group leader, 0 before start
	exited       bool // the process was waited for
	stopReason   string
	canceled     bool   // stopped because the control plane asked
	cancelReason string // its reason
	shutdown     bool   // stopped because the runner is stopping
	overdue      bool   // stopped by the runner's own timeout backstop
	gone         bool   // 409: the attempt is not ours any more
	sigkilled    bool
	lastPost     time.Time
	failedPost   time.Time
}

func (r *Runner) runAttempt(ctx context.Context, job *apitypes.RunnerJob) {
	a := &attempt{r: r, job: job, log: r.log.With("job", job.Name, "attempt", job.Attempt)}
	a.out.init(r.cfg.FlushBytes)
	a.log.Info("job claimed", "routingKey", job.RoutingKey, "sandbox", job.Sandbox, "routeGroup", job.RouteGroup)
	a.run(ctx)
}

func (a *attempt) run(ctx context.Context) {
	// Requests after the runner's ctx ended (final output, artifacts,
	// finish) still go out: the pod's grace period covers them.
	bg := context.WithoutCancel(ctx)
	base, err := os.MkdirTemp(a.r.cfg.WorkRoot, "job-")
	if err != nil {
		a.finish(bg, apitypes.RunnerFinish{ExitCode: 1, Message: fmt.Sprintf("runner: cannot make a work folder in %s: %v", a.r.cfg.WorkRoot, err)})
		return
	}
	defer func() {
		if err := os.RemoveAll(base); err != nil {
			a.log.Warn("cannot remove the work folder", "dir", base, "err", err)
		}
	}()
	work := filepath.Join(base, "work")
	if err := os.Mkdir(work, 0o700); err != nil {
		a.finish(bg, apitypes.RunnerFinish{ExitCode: 1, Message: fmt.Sprintf("runner: cannot make the work folder %s: %v", work, err)})
		return
	}

	stopPump := make(chan struct{})
	pumpDone := make(chan struct{})
	go a.pump(bg, stopPump, pumpDone)
	stop := func() {
		close(stopPump)
		<-pumpDone
	}

	code, msg, started := a.execute(ctx, base, work)
	if !started {
		stop()
		a.finish(bg, apitypes.RunnerFinish{ExitCode: code, Message: msg})
		return
	}
	a.flushAll(bg)
	if a.isGone() {
		stop()
		a.log.Warn("attempt taken away by the control plane (HTTP 409); not finishing it")
		return
	}
	var msgs []string
	if msg != "" {
		msgs = append(msgs, msg)
	}
	msgs = append(msgs, a.uploadArtifacts(bg, work)...)
	stop()
	if a.isGone() {
		a.log.Warn("attempt taken away by the control plane (HTTP 409); not finishing it")
		return
	}
	a.mu.Lock()
	f := apitypes.RunnerFinish{ExitCode: code, Message: strings.Join(msgs, "; "), Canceled: a.canceled}
	a.mu.Unlock()
	a.finish(bg, f)
}

// execute runs the job's script or command and waits for it and its
// output. started is false when it could not start (code and msg say why).
func (a *attempt) execute(ctx context.Context, base, work string) (code int, msg string, started bool) {
	var cmd *exec.Cmd
	switch {
	case a.job.Script != "":
		script := filepath.Join(base, "script")
		if err := os.WriteFile(script, []byte(a.job.Script), 0o700); err != nil {
			return 1, fmt.Sprintf("runner: cannot write the script: %v", err), false
		}
		cmd = exec.Command(script)
	case len(a.job.Command) > 0:
		name := a.job.Command[0]
		if name == SelfCommand && a.r.cfg.Self != "" {
			name = a.r.cfg.Self // the runner itself, wherever it is installed
		}
		cmd = exec.Command(name, a.job.Command[1:]...)
		cmd.Args[0] = a.job.Command[0]
	default:
		return 1, "runner: the job has neither a script nor a command", false
	}
	cmd.Dir = work
	cmd.Env = a.env(work)
	newProcessGroup(cmd)
	outR, outW, err := os.Pipe()
	if err != nil {
		return 1, fmt.Sprintf("runner: %v", err), false
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return 1, fmt.Sprintf("runner: %v", err), false
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	// stdin: /dev/null, or an empty pipe where there is none (a bare chroot).
	stdin, err := os.Open(os.DevNull)
	if err != nil {
		r, w, perr := os.Pipe()
		if perr == nil {
			w.Close()
			stdin = r
		}
	}
	if stdin != nil {
		cmd.Stdin = stdin
	}
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if stdin != nil {
		stdin.Close()
	}
	if err != nil {
		outR.Close()
		errR.Close()
		code, msg := a.startError(err)
		a.log.Warn("job did not start", "err", err)
		return code, msg, false
	}
	a.mu.Lock()
	a.pid = cmd.Process.Pid
	early := a.canceled || a.gone
	a.mu.Unlock()
	a.log.Info("job started", "pid", cmd.Process.Pid)
	if early { // a cancel answer came while the process started
		a.stop(func() {}, "canceled before the job started")
	}

	var readers sync.WaitGroup
	for _, p := range []struct {
		f      *os.File
		stream string
	}{{outR, apitypes.LogStreamStdout}, {errR, apitypes.LogStreamStderr}} {
		readers.Go(func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := p.f.Read(buf)
				if n > 0 {
					a.out.write(p.stream, buf[:n])
				}
				if err != nil {
					return
				}
			}
		})
	}

	waited := make(chan struct{})
	// The control plane cancels a job at its timeout; the runner's own timer,
	// TimeoutBackstop later, stops it when the control plane cannot be asked.
	var overdue <-chan time.Time
	if a.job.TimeoutSeconds > 0 {
		t := time.NewTimer(time.Duration(a.job.TimeoutSeconds)*time.Second + a.r.cfg.TimeoutBackstop)
		defer t.Stop()
		overdue = t.C
	}
	go func() {
		select {
		case <-ctx.Done():
			a.stop(func() { a.shutdown = true }, "runner stopping")
		case <-overdue:
			a.stop(func() { a.overdue = true }, "past the job timeout")
		case <-waited:
		}
	}()
	werr := cmd.Wait()
	a.mu.Lock()
	a.exited = true
	a.mu.Unlock()
	close(waited)
	// Whatever the job left running in its group goes with it.
	signalGroup(cmd.Process.Pid, syscall.SIGKILL)
	drained := make(chan struct{})
	go func() {
		readers.Wait()
		close(drained)
	}()
	select {
	case <-drained:
	case <-time.After(drainWait):
		a.log.Warn("a process outside the job's process group holds its output; closing it")
		outR.Close()
		errR.Close()
		<-drained
	}
	outR.Close()
	errR.Close()

	if cmd.ProcessState == nil {
		return 1, fmt.Sprintf("runner: wait: %v", werr), true
	}
	code, sig := exitCode(cmd.ProcessState)
	a.mu.Lock()
	defer a.mu.Unlock()
	how := "SIGTERM"
	if a.sigkilled {
		how = fmt.Sprintf("SIGTERM, then SIGKILL after %s", a.r.cfg.KillGrace)
	}
	switch {
	case a.canceled:
		msg = fmt.Sprintf("canceled (%s): the runner stopped the job's processes with %s", a.cancelReason, how)
	case a.shutdown:
		msg = fmt.Sprintf("the runner pod %s/%s was stopped while the job ran; the runner stopped the job's processes with %s", a.r.cfg.Namespace, a.r.cfg.Pod, how)
		if code == 0 {
			code = 128 + int(syscall.SIGTERM) // the job did not finish: never a success
		}
	case a.overdue:
		msg = fmt.Sprintf("the job ran past its timeout (%ds) and the control plane did not cancel it; the runner stopped its processes with %s", a.job.TimeoutSeconds, how)
		if code == 0 {
			code = 128 + int(syscall.SIGTERM)
		}
	case a.gone:
	case sig != "":
		msg = fmt.Sprintf("the job's process was ended by a signal (%s)", sig)
	}
	a.log.Info("job exited", "exitCode", code, "canceled", a.canceled, "runnerStopping", a.shutdown)
	return code, msg, true
}

// startError explains why the process did not start, with a shell's exit
// codes (127 not found, 126 not executable).
func (a *attempt) startError(err error) (int, string) {
	code := 126
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
		code = 127
	}
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Op != "fork/exec" && pe.Op != "exec" {
		// Not the program: the runner's own set-up of the process failed.
		return 1, fmt.Sprintf("runner: cannot start the job: %v", err)
	}
	if a.job.Script != "" {
		interp, _, _ := strings.Cut(strings.TrimPrefix(a.job.Script, "#!"), "\n")
		interp = strings.TrimSpace(interp)
		switch {
		case !strings.HasPrefix(a.job.Script, "#!"):
			return 126, "cannot run the script: it does not start with #! (e.g. #!/bin/sh)"
		case code == 127:
			return 127, fmt.Sprintf("cannot run the script: its interpreter %q is not in the runner image (the sandboxmesh-runner image has /bin/sh from busybox)", interp)
		}
		return code, fmt.Sprintf("cannot run the script (#!%s): %v", interp, err)
	}
	return code, fmt.Sprintf("cannot run the command %q: %v", a.job.Command[0], err)
}

// env is the job's environment: the pod's, without the runner's token, then
// the job's (its injected SANDBOXMESH_*/SIGNADOT_* variables last, so they
// win: exec keeps the last value of a name).
func (a *attempt) env(work string) []string {
	var env []string
	hasPath, hasHome := false, false
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case EnvRunnerToken:
			continue
		case "PATH":
			hasPath = true
		case "HOME":
			hasHome = true
		}
		env = append(env, kv)
	}
	if !hasPath {
		env = append(env, "PATH="+defaultPath)
	}
	if !hasHome {
		env = append(env, "HOME="+work)
	}
	for _, e := range a.job.Env {
		if e.Name == "" || strings.ContainsAny(e.Name, "=\x00") || strings.IndexByte(e.Value, 0) >= 0 || e.Name == EnvRunnerToken {
			a.log.Warn("skipping an invalid environment variable", "name", e.Name)
			continue
		}
		env = append(env, e.Name+"="+e.Value)
	}
	return env
}

// stop ends the job's process group: SIGTERM, SIGKILL after KillGrace. mark
// records why (under a.mu); only the first stop counts.
func (a *attempt) stop(mark func(), why string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopReason != "" || a.exited || a.pid == 0 {
		if a.stopReason == "" && !a.exited && a.pid == 0 {
			mark() // before start: execute sees it
		}
		return
	}
	mark()
	a.stopReason = why
	pid := a.pid
	a.log.Info("stopping the job", "reason", why, "signal", "SIGTERM")
	signalGroup(pid, syscall.SIGTERM)
	time.AfterFunc(a.r.cfg.KillGrace, func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.exited {
			return
		}
		a.sigkilled = true
		a.log.Warn("the job ignored SIGTERM; killing it", "grace", a.r.cfg.KillGrace)
		signalGroup(pid, syscall.SIGKILL)
	})
}

func (a *attempt) isGone() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.gone
}

// pump sends output every FlushInterval (or as soon as FlushBytes are
// waiting) and a heartbeat when nothing was sent for HeartbeatInterval,
// until stop closes.
func (a *attempt) pump(ctx context.Context, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(a.r.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		case <-a.out.full:
		}
		a.post(ctx, false)
	}
}

// flushAll sends the output left (a few tries when the control plane does
// not answer).
func (a *attempt) flushAll(ctx context.Context) {
	for try := 0; a.out.pending() > 0 && try < 5 && !a.isGone(); try++ {
		if try > 0 {
			time.Sleep(jitter(a.r.cfg.BackoffMin << (try - 1)))
		}
		a.post(ctx, true)
	}
	if n := a.out.pending(); n > 0 {
		a.log.Warn("output not delivered", "bytes", n)
	}
}

// post sends waiting output, or a heartbeat when due, and acts on the
// answer. force sends even right after a failure.
func (a *attempt) post(ctx context.Context, force bool) {
	a.postMu.Lock()
	defer a.postMu.Unlock()
	a.mu.Lock()
	gone, last, failed := a.gone, a.lastPost, a.failedPost
	a.mu.Unlock()
	if gone {
		return
	}
	now := time.Now()
	if !force && !failed.IsZero() && now.Sub(failed) < a.r.cfg.BackoffMin {
		return // the last request failed: do not hammer
	}
	if a.out.pending() == 0 && now.Sub(last) < a.r.cfg.HeartbeatInterval {
		return
	}
	for {
		logs := a.out.take(maxPost)
		ans, err := a.r.events(ctx, a.job, apitypes.RunnerEvents{Logs: logs})
		a.mu.Lock()
		a.lastPost = time.Now()
		a.mu.Unlock()
		switch {
		case isStatus(err, http.StatusConflict):
			a.log.Warn("the control plane says the attempt no longer runs on this pod (HTTP 409); stopping the job", "err", err)
			a.stop(func() { a.gone = true }, "attempt taken away (HTTP 409)")
			a.mu.Lock()
			a.gone = true
			a.mu.Unlock()
			return
		case err != nil:
			a.out.putBack(logs)
			a.mu.Lock()
			first := a.failedPost.IsZero()
			a.failedPost = time.Now()
			a.mu.Unlock()
			if first {
				a.log.Warn("sending output failed; keeping it and retrying", "err", err)
			}
			return
		}
		a.mu.Lock()
		if !a.failedPost.IsZero() {
			a.log.Info("the control plane takes output again")
		}
		a.failedPost = time.Time{}
		a.mu.Unlock()
		if ans.Cancel {
			reason := ans.Reason
			if reason == "" {
				reason = apitypes.CancelReasonAPIRequest
			}
			a.stop(func() { a.canceled, a.cancelReason = true, reason }, "canceled ("+reason+")")
		}
		if a.out.pending() == 0 {
			return
		}
	}
}

// uploadArtifacts sends each file the job named; it returns a message per
// file that was not uploaded (the job's exit code stands).
func (a *attempt) uploadArtifacts(ctx context.Context, work string) []string {
	var msgs []string
	for _, art := range a.job.UploadArtifact {
		if a.isGone() {
			return msgs
		}
		p := art.Path
		if !filepath.IsAbs(p) {
			p = filepath.Join(work, p)
		}
		if err := a.uploadOne(ctx, art.Path, p); err != nil {
			a.log.Warn("artifact not uploaded", "path", art.Path, "err", err)
			msgs = append(msgs, fmt.Sprintf("artifact %s not uploaded: %v", art.Path, err))
			continue
		}
		a.log.Info("artifact uploaded", "path", art.Path)
	}
	return msgs
}

func (a *attempt) uploadOne(ctx context.Context, name, p string) error {
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return errors.New("no such file")
	}
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("not a regular file (%s)", st.Mode().Type())
	}
	ct := mime.TypeByExtension(filepath.Ext(p))
	if ct == "" {
		ct = "application/octet-stream"
	}
	var body io.Reader = bufio.NewReaderSize(io.LimitReader(f, st.Size()), 256<<10)
	err = a.r.upload(ctx, a.job, name, body, st.Size(), ct)
	if isStatus(err, http.StatusConflict) {
		a.mu.Lock()
		a.gone = true
		a.mu.Unlock()
	}
	return err
}

// finish reports the attempt's end, retrying a few times.
func (a *attempt) finish(ctx context.Context, f apitypes.RunnerFinish) {
	var err error
	for try := 0; try < 5; try++ {
		if try > 0 {
			time.Sleep(jitter(a.r.cfg.BackoffMin << (try - 1)))
		}
		err = a.r.finish(ctx, a.job, f)
		if err == nil || isStatus(err, http.StatusConflict) || isStatus(err, http.StatusNotFound) {
			break
		}
	}
	if err != nil {
		a.log.Error("finish not reported; the control plane will fail the attempt when its heartbeats stop", "err", err, "exitCode", f.ExitCode)
		return
	}
	a.log.Info("job finished", "exitCode", f.ExitCode, "canceled", f.Canceled, "message", f.Message)
}

// outBuf holds output not sent yet, in arrival order, consecutive writes of
// one stream merged.
type outBuf struct {
	mu      sync.Mutex
	chunks  []apitypes.LogChunk
	size    int
	dropped int
	limit   int
	full    chan struct{}
}

func (b *outBuf) init(limit int) {
	b.limit = limit
	b.full = make(chan struct{}, 1)
}

func (b *outBuf) write(stream string, p []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.size+len(p) > maxPending {
		b.dropped += len(p)
		return
	}
	if b.dropped > 0 {
		note := fmt.Sprintf("\n[sandboxmesh-runner: %d bytes of output dropped: the control plane did not take them]\n", b.dropped)
		b.chunks = append(b.chunks, apitypes.LogChunk{Stream: apitypes.LogStreamStderr, Data: []byte(note)})
		b.size += len(note)
		b.dropped = 0
	}
	if n := len(b.chunks); n > 0 && b.chunks[n-1].Stream == stream {
		b.chunks[n-1].Data = append(b.chunks[n-1].Data, p...)
	} else {
		b.chunks = append(b.chunks, apitypes.LogChunk{Stream: stream, Data: append([]byte(nil), p...)})
	}
	b.size += len(p)
	if b.size >= b.limit {
		select {
		case b.full <- struct{}{}:
		default:
		}
	}
}

func (b *outBuf) pending() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.size
}

// take removes up to max bytes of output.
func (b *outBuf) take(max int) []apitypes.LogChunk {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []apitypes.LogChunk
	n := 0
	for len(b.chunks) > 0 && n < max {
		c := b.chunks[0]
		if n+len(c.Data) > max {
			k := max - n
			out = append(out, apitypes.LogChunk{Stream: c.Stream, Data: c.Data[:k:k]})
			b.chunks[0].Data = append([]byte(nil), c.Data[k:]...)
			n += k
			break
		}
		out = append(out, c)
		b.chunks = b.chunks[1:]
		n += len(c.Data)
	}
	b.size -= n
	return out
}

// putBack returns output take removed, in front of what came since.
func (b *outBuf) putBack(c []apitypes.LogChunk) {
	if len(c) == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, x := range c {
		b.size += len(x.Data)
	}
	b.chunks = append(append([]apitypes.LogChunk(nil), c...), b.chunks...)
}
