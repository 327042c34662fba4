package nats

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sandboxmesh/sandboxmesh/mq"
)

// MsgHandler processes a core NATS message. ctx carries the message's trace context (unless
// Common.Contexts is mq.KeyContexts), baggage and routing
// key. Core NATS does not redeliver: an error is counted and logged.
type MsgHandler func(ctx context.Context, msg *nats.Msg) error

// QueueConfig configures a QueueConsumer.
type QueueConfig struct {
	Common
	// Conn is the app's connection. Required.
	Conn *nats.Conn
	// Subject is the subject (wildcards allowed) to subscribe to. Required.
	Subject string
	// Queue is the baseline's queue group Q; a sandbox joins Identity.ScopedName(Queue). Required.
	Queue string
	// HandlerTimeout bounds one call of the handler (default 30s; negative means no bound), as
	// JetStreamConfig.HandlerTimeout does: calls that start within 1/64 of it share one deadline.
	HandlerTimeout time.Duration
}

// QueueConsumer consumes a core NATS subject in a queue group, selectively (see the package doc).
type QueueConsumer struct {
	*core
	cfg      QueueConfig
	group    string
	sub      *nats.Subscription
	hTimeout time.Duration
	stopCh   chan struct{}
	lifecycle
}

// NewQueueConsumer validates cfg, subscribes (so messages published from then on are buffered for Run)
// and waits for the first route table (bounded by SyncTimeout).
func NewQueueConsumer(ctx context.Context, cfg QueueConfig) (*QueueConsumer, error) {
	switch {
	case cfg.Conn == nil:
		return nil, errors.New("nats: queue consumer: conn: required")
	case cfg.Subject == "":
		return nil, errors.New("nats: queue consumer: subject: required")
	case cfg.Queue == "":
		return nil, errors.New("nats: queue consumer: queue: required")
	}
	if err := validName(cfg.Queue); err != nil {
		return nil, fmt.Errorf("nats: queue consumer: queue: %w", err)
	}
	k, err := newCore(cfg.Common, "queue consumer")
	if err != nil {
		return nil, err
	}
	c := &QueueConsumer{core: k, cfg: cfg, group: k.id.ScopedName(cfg.Queue), stopCh: make(chan struct{})}
	switch {
	case cfg.HandlerTimeout > 0:
		c.hTimeout = cfg.HandlerTimeout
	case cfg.HandlerTimeout == 0:
		c.hTimeout = 30 * time.Second
	}
	c.sub, err = cfg.Conn.QueueSubscribeSync(cfg.Subject, c.group)
	if err == nil {
		err = cfg.Conn.FlushWithContext(ctx) // the server has the subscription when this returns
	}
	if err != nil {
		if c.sub != nil {
			_ = c.sub.Unsubscribe()
		}
		k.close()
		return nil, fmt.Errorf("nats: consumer %s: subscribe %q in queue group %q: %w", k.id, cfg.Subject, c.group, err)
	}
	if err := k.waitSynced(ctx, cfg.SyncTimeout); err != nil {
		_ = c.sub.Unsubscribe()
		k.close()
		return nil, err
	}
	return c, nil
}

// Queue is the queue group: Queue for the baseline, Identity.ScopedName(Queue) for a sandbox.
func (c *QueueConsumer) Queue() string { return c.group }

// Stats returns the counters of processed and skipped messages.
func (c *QueueConsumer) Stats() Stats { return c.stats() }

// Run handles messages until ctx ends, Close is called or the subscription fails; it returns nil when
// stopped by ctx or Close.
func (c *QueueConsumer) Run(ctx context.Context, h MsgHandler) error {
	if h == nil {
		return fmt.Errorf("nats: consumer %s: Run: handler: required", c.id)
	}
	done, err := c.startRun(c.id)
	if err != nil {
		return err
	}
	defer close(done)

	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-c.stopCh:
			cancel()
		case <-rctx.Done():
		}
	}()
	dl := newDeadlines(ctx, c.hTimeout)
	defer dl.stop()
	for {
		m, err := c.sub.NextMsgWithContext(rctx)
		if err != nil {
			if rctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("nats: consumer %s: queue group %q: %w", c.id, c.group, err)
		}
		c.handle(ctx, dl, h, m)
	}
}

// handle decides on m and hands it to h. ctx is Run's context; dl (nil: no bound) gives the call its
// HandlerTimeout.
func (c *QueueConsumer) handle(ctx context.Context, dl *deadlines, h MsgHandler, m *nats.Msg) {
	if dctx := dl.ctx(); dctx != nil {
		ctx = dctx
	}
	mctx, key, d := c.decide(ctx, m.Header)
	if d != mq.Process {
		return
	}
	if err := h(mctx, m); err != nil {
		c.failed.Add(1)
		c.log.Warn("handler failed (core NATS does not redeliver)", "queue", c.group, "subject", m.Subject, "routingKey", key, "error", err)
		return
	}
	c.processed.Add(1)
}

// Close stops Run, waits for it (bounded by ctx) and unsubscribes. Messages received but not yet handled
// are dropped (core NATS is at-most-once).
func (c *QueueConsumer) Close(ctx context.Context) error {
	first, running, done := c.startClose()
	if !first {
		return nil
	}
	defer c.core.close()
	var errs []error
	close(c.stopCh)
	if running {
		select {
		case <-done:
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("nats: consumer %s: waiting for Run to stop: %w", c.id, context.Cause(ctx)))
		}
	}
	if err := c.sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrBadSubscription) {
		errs = append(errs, fmt.Errorf("nats: consumer %s: unsubscribe: %w", c.id, err))
	}
	return errors.Join(errs...)
}
