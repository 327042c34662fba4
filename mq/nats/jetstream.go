package nats

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sandboxmesh/sandboxmesh/mq"
)

// DefaultInactiveThreshold is how long a sandbox's consumer may go without a client before the server
// deletes it (a fork that crashed or was deleted without Close leaves nothing for ever).
const DefaultInactiveThreshold = 15 * time.Minute

// ErrClosed is returned by Run after Close.
var ErrClosed = errors.New("nats: consumer closed")

// Handler processes a JetStream message. ctx carries the message's trace context (unless Common.Contexts is
// mq.KeyContexts), baggage and routing key
// (routingkey.FromContext gives it). Returning nil acknowledges the message (unless the handler already
// did); an error negatively acknowledges it, so the server redelivers it.
type Handler func(ctx context.Context, msg jetstream.Msg) error

// JetStreamConfig configures a JetStreamConsumer.
type JetStreamConfig struct {
	Common
	// JetStream is the app's JetStream context (jetstream.New(nc)). Required.
	JetStream jetstream.JetStream
	// Stream is the stream to consume. Required; it must exist.
	Stream string
	// Durable is the baseline's durable consumer name D. Required. A sandbox consumes with durable
	// Identity.ScopedName(Durable).
	Durable string
	// Consumer is the configuration the baseline's consumer is created with when it does not exist
	// (FilterSubject(s), AckWait, MaxDeliver, BackOff, MaxAckPending, ...); Durable and Name are set from
	// Durable. A sandbox's consumer is created from it too, with DeliverPolicy new, AckExplicit and
	// InactiveThreshold; when it sets no filter subject, the sandbox copies the filter subjects, AckWait,
	// MaxDeliver, BackOff and MaxAckPending of the baseline's consumer if that exists.
	Consumer jetstream.ConsumerConfig
	// InactiveThreshold is the sandbox consumer's inactivity threshold (default DefaultInactiveThreshold).
	// The baseline's consumer keeps its own setting.
	InactiveThreshold time.Duration
	// HandlerTimeout bounds one call of the handler (default: the consumer's AckWait, after which the
	// server redelivers anyway; negative means no bound). Calls that start within 1/64 of it of each other
	// share one deadline (one timer rather than one per message): a call's context is done between 63/64 of
	// HandlerTimeout and HandlerTimeout after the call starts, or when Run's context is; it is not canceled
	// when the call returns.
	HandlerTimeout time.Duration
	// DrainTimeout bounds how long Run, when stopping, keeps handling the messages it had already received
	// (default 10s).
	DrainTimeout time.Duration
	// DeleteGrace is how long Close keeps consuming, for a sandbox whose key is no longer routed to it,
	// before it catches up and deletes the durable consumer (default 2s): the baseline's route copy may
	// learn that the route is gone a little after this consumer's did, and skips the sandbox's messages
	// until then. The key's messages of the grace period are processed twice, none is lost.
	DeleteGrace time.Duration
	// ConsumeOptions are passed to jetstream.Consumer.Consume (batch size, heartbeat, ...).
	ConsumeOptions []jetstream.PullConsumeOpt
}

// JetStreamConsumer consumes a stream selectively with a durable pull consumer: the baseline's or its
// sandbox's (see the package doc). Run consumes; Close stops and, for a sandbox being deleted, deletes its
// consumer.
type JetStreamConsumer struct {
	*core
	cfg      JetStreamConfig
	cons     jetstream.Consumer
	name     string
	hTimeout time.Duration
	stopCh   chan struct{}
	lifecycle
}

// NewJetStreamConsumer validates cfg, finds or creates the durable consumer (for a sandbox: its scoped
// consumer, created before this returns, so no message published from then on is missed) and waits for the
// first route table (bounded by SyncTimeout). It does not consume: call Run.
func NewJetStreamConsumer(ctx context.Context, cfg JetStreamConfig) (*JetStreamConsumer, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	k, err := newCore(cfg.Common, "jetstream consumer")
	if err != nil {
		return nil, err
	}
	c := &JetStreamConsumer{core: k, cfg: cfg, name: k.id.ScopedName(cfg.Durable), stopCh: make(chan struct{})}
	if err := c.setup(ctx); err != nil {
		k.close()
		return nil, err
	}
	if err := k.waitSynced(ctx, cfg.SyncTimeout); err != nil {
		k.close()
		return nil, err
	}
	return c, nil
}

func (cfg *JetStreamConfig) validate() error {
	switch {
	case cfg.JetStream == nil:
		return errors.New("nats: jetstream consumer: jetStream: required")
	case cfg.Stream == "":
		return errors.New("nats: jetstream consumer: stream: required")
	case cfg.Durable == "":
		return errors.New("nats: jetstream consumer: durable: required")
	case cfg.Consumer.Durable != "" && cfg.Consumer.Durable != cfg.Durable:
		return fmt.Errorf("nats: jetstream consumer: consumer.durable: %q differs from durable %q (leave it empty)", cfg.Consumer.Durable, cfg.Durable)
	case cfg.Consumer.Name != "" && cfg.Consumer.Name != cfg.Durable:
		return fmt.Errorf("nats: jetstream consumer: consumer.name: %q differs from durable %q (leave it empty)", cfg.Consumer.Name, cfg.Durable)
	case cfg.InactiveThreshold < 0:
		return fmt.Errorf("nats: jetstream consumer: inactiveThreshold: %s is negative", cfg.InactiveThreshold)
	}
	if err := validName(cfg.Stream); err != nil {
		return fmt.Errorf("nats: jetstream consumer: stream: %w", err)
	}
	if err := validName(cfg.Durable); err != nil {
		return fmt.Errorf("nats: jetstream consumer: durable: %w", err)
	}
	if cfg.InactiveThreshold == 0 {
		cfg.InactiveThreshold = DefaultInactiveThreshold
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 10 * time.Second
	}
	if cfg.DeleteGrace <= 0 {
		cfg.DeleteGrace = 2 * time.Second
	}
	return nil
}

// validName checks a stream or consumer name as the server does.
func validName(s string) error {
	if len(s) > 255 {
		return fmt.Errorf("%q: longer than 255 characters", s[:32]+"...")
	}
	if i := strings.IndexAny(s, " \t\r\n.*>/\\"); i >= 0 {
		return fmt.Errorf("%q: %q is not allowed in a name", s, s[i])
	}
	return nil
}

func (c *JetStreamConsumer) setup(ctx context.Context) error {
	js, id := c.cfg.JetStream, c.id
	st, err := js.Stream(ctx, c.cfg.Stream)
	if err != nil {
		return fmt.Errorf("nats: consumer %s: stream %q: %w", id, c.cfg.Stream, err)
	}
	if id.IsSandbox() && st.CachedInfo().Config.Retention == jetstream.WorkQueuePolicy {
		return fmt.Errorf("nats: consumer %s: stream %q has WorkQueue retention, which allows one consumer per subject: "+
			"selective consumption needs Limits or Interest retention", id, c.cfg.Stream)
	}
	cons, err := st.Consumer(ctx, c.name)
	switch {
	case err == nil:
		// an existing consumer (a restarted pod, or one created by the operations team): resume it
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		cc := c.cfg.Consumer
		if id.IsSandbox() {
			cc = c.sandboxConfig(ctx, st)
		} else {
			cc.Durable, cc.Name = c.name, ""
		}
		cons, err = st.CreateConsumer(ctx, cc)
		if errors.Is(err, jetstream.ErrConsumerExists) {
			cons, err = st.Consumer(ctx, c.name) // another replica created it meanwhile
		}
		if err != nil {
			return fmt.Errorf("nats: consumer %s: create durable consumer %q on stream %q: %w", id, c.name, c.cfg.Stream, err)
		}
		c.log.Info("created durable consumer", "stream", c.cfg.Stream, "durable", c.name)
	default:
		return fmt.Errorf("nats: consumer %s: durable consumer %q on stream %q: %w", id, c.name, c.cfg.Stream, err)
	}
	c.cons = cons
	ci := cons.CachedInfo().Config
	if ci.AckPolicy == jetstream.AckNonePolicy {
		c.log.Warn("durable consumer acknowledges nothing (AckNone): skipped and failed messages are not tracked", "durable", c.name)
	}
	switch {
	case c.cfg.HandlerTimeout > 0:
		c.hTimeout = c.cfg.HandlerTimeout
	case c.cfg.HandlerTimeout == 0:
		c.hTimeout = ci.AckWait
	}
	return nil
}

// sandboxConfig is the configuration of a sandbox's consumer.
func (c *JetStreamConsumer) sandboxConfig(ctx context.Context, st jetstream.Stream) jetstream.ConsumerConfig {
	cc := c.cfg.Consumer
	if cc.FilterSubject == "" && len(cc.FilterSubjects) == 0 {
		if base, err := st.Consumer(ctx, c.cfg.Durable); err == nil {
			b := base.CachedInfo().Config
			cc.FilterSubject, cc.FilterSubjects = b.FilterSubject, b.FilterSubjects
			if cc.AckWait == 0 {
				cc.AckWait = b.AckWait
			}
			if cc.MaxDeliver == 0 {
				cc.MaxDeliver = b.MaxDeliver
			}
			if len(cc.BackOff) == 0 {
				cc.BackOff = b.BackOff
			}
			if cc.MaxAckPending == 0 {
				cc.MaxAckPending = b.MaxAckPending
			}
		}
	}
	cc.Durable, cc.Name = c.name, ""
	cc.DeliverPolicy = jetstream.DeliverNewPolicy
	cc.OptStartSeq, cc.OptStartTime = 0, nil
	cc.AckPolicy = jetstream.AckExplicitPolicy
	cc.InactiveThreshold = c.cfg.InactiveThreshold
	if cc.Description == "" {
		cc.Description = "SandboxMesh: " + c.cfg.Durable + " of sandbox " + c.id.Sandbox
	}
	md := make(map[string]string, len(cc.Metadata)+2)
	for k, v := range cc.Metadata {
		md[k] = v
	}
	md["sandboxmesh.io/sandbox"] = c.id.Sandbox
	md["sandboxmesh.io/baseline-durable"] = c.cfg.Durable
	cc.Metadata = md
	return cc
}

// Name is the durable consumer's name: Durable for the baseline, Identity.ScopedName(Durable) for a sandbox.
func (c *JetStreamConsumer) Name() string { return c.name }

// Stats returns the counters of processed and skipped messages.
func (c *JetStreamConsumer) Stats() Stats { return c.stats() }

// Run consumes until ctx ends, Close is called or the consumer disappears from the server, handing the
// messages this consumer selects to h and acknowledging the others. When it stops it first handles the
// messages it had received (up to DrainTimeout). It returns nil when stopped by ctx or Close.
func (c *JetStreamConsumer) Run(ctx context.Context, h Handler) error {
	if h == nil {
		return fmt.Errorf("nats: consumer %s: Run: handler: required", c.id)
	}
	done, err := c.startRun(c.id)
	if err != nil {
		return err
	}
	defer close(done)

	watchStop := make(chan struct{})
	defer close(watchStop)
	go c.watchRoutes(watchStop)

	fatal := make(chan error, 1)
	opts := append([]jetstream.PullConsumeOpt{jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
			select {
			case fatal <- fmt.Errorf("nats: consumer %s: durable consumer %q: %w", c.id, c.name, err):
			default:
			}
			return
		}
		c.log.Warn("consume error", "durable", c.name, "error", err)
	})}, c.cfg.ConsumeOptions...)
	dl := newDeadlines(ctx, c.hTimeout)
	defer dl.stop()
	cc, err := c.cons.Consume(func(m jetstream.Msg) { c.handle(ctx, dl, h, m) }, opts...)
	if err != nil {
		return fmt.Errorf("nats: consumer %s: consume %q: %w", c.id, c.name, err)
	}
	var ret error
	select {
	case <-ctx.Done():
	case <-c.stopCh:
	case ret = <-fatal:
	}
	cc.Drain()
	t := time.NewTimer(c.cfg.DrainTimeout)
	defer t.Stop()
	select {
	case <-cc.Closed():
	case <-t.C:
		cc.Stop()
		c.log.Warn("drain timed out: unacknowledged messages will be redelivered", "durable", c.name, "timeout", c.cfg.DrainTimeout)
	}
	return ret
}

// handle decides on m and hands it to h or acks it. ctx is Run's context; dl (nil: no bound) gives the
// call its HandlerTimeout.
func (c *JetStreamConsumer) handle(ctx context.Context, dl *deadlines, h Handler, m jetstream.Msg) {
	if dctx := dl.ctx(); dctx != nil {
		ctx = dctx
	}
	mctx, key, d := c.decide(ctx, m.Headers())
	if d != mq.Process {
		if err := m.Ack(); err != nil {
			c.log.Warn("ack of a skipped message failed; it will be redelivered and skipped again", "durable", c.name, "decision", d.String(), "error", err)
		}
		return
	}
	if err := h(mctx, m); err != nil {
		c.failed.Add(1)
		c.log.Warn("handler failed; the message will be redelivered", "durable", c.name, "subject", m.Subject(), "routingKey", key, "error", err)
		if err := m.Nak(); err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
			c.log.Warn("nak failed", "durable", c.name, "error", err)
		}
		return
	}
	if err := m.Ack(); err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
		c.log.Warn("ack failed; the message may be redelivered", "durable", c.name, "error", err)
	}
	c.processed.Add(1)
}

// Close stops Run and waits for it (bounded by ctx). For a sandbox whose routing key was routed to it and
// no longer is (the sandbox is being deleted), it first lets Run handle everything still pending for the
// consumer, then deletes the sandbox's durable consumer; if that does not finish within ctx, the consumer
// is left for the server to delete after InactiveThreshold. It never deletes the baseline's consumer.
func (c *JetStreamConsumer) Close(ctx context.Context) error {
	first, running, done := c.startClose()
	if !first {
		return nil
	}
	defer c.core.close()

	var errs []error
	del := c.goneAway()
	if del && running {
		select { // the grace: Run goes on consuming
		case <-time.After(c.cfg.DeleteGrace):
		case <-done:
		case <-ctx.Done():
		}
		if err := c.catchUp(ctx, done); err != nil {
			errs = append(errs, err)
			del = false
		}
	}
	close(c.stopCh)
	if running {
		select {
		case <-done:
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("nats: consumer %s: waiting for Run to stop: %w", c.id, context.Cause(ctx)))
		}
	}
	if del {
		if err := c.cfg.JetStream.DeleteConsumer(ctx, c.cfg.Stream, c.name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			errs = append(errs, fmt.Errorf("nats: consumer %s: delete durable consumer %q (the server deletes it after %s of inactivity): %w",
				c.id, c.name, c.cfg.InactiveThreshold, err))
		} else {
			c.log.Info("deleted the sandbox's durable consumer: its routing key is no longer routed to it", "stream", c.cfg.Stream, "durable", c.name)
		}
	}
	return errors.Join(errs...)
}

// catchUp waits until the consumer has nothing pending or unacknowledged (Run handling it).
func (c *JetStreamConsumer) catchUp(ctx context.Context, done <-chan struct{}) error {
	t := time.NewTicker(25 * time.Millisecond)
	defer t.Stop()
	for {
		info, err := c.cons.Info(ctx)
		if err != nil {
			return fmt.Errorf("nats: consumer %s: before deleting %q: %w", c.id, c.name, err)
		}
		if info.NumPending == 0 && info.NumAckPending == 0 {
			return nil
		}
		select {
		case <-t.C:
		case <-done:
			return fmt.Errorf("nats: consumer %s: Run stopped with %d messages pending for %q: not deleting it", c.id, info.NumPending+uint64(info.NumAckPending), c.name)
		case <-ctx.Done():
			return fmt.Errorf("nats: consumer %s: %d messages still pending for %q, not deleting it: %w", c.id, info.NumPending+uint64(info.NumAckPending), c.name, context.Cause(ctx))
		}
	}
}
