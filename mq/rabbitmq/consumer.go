package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
	"github.com/sandboxmesh/sandboxmesh/mq"
	"github.com/sandboxmesh/sandboxmesh/mq/routes"
)

// Defaults of Config.
const (
	DefaultSandboxExpiry = 15 * time.Minute
	DefaultPrefetch      = 64
	DefaultMaxAttempts   = 2
	DefaultSyncTimeout   = 30 * time.Second
	DefaultDrainTimeout  = 10 * time.Second
	DefaultDeleteGrace   = 2 * time.Second
	DefaultDialTimeout   = 10 * time.Second
)

// ErrClosed is returned by Run after Close.
var ErrClosed = errors.New("rabbitmq: consumer closed")

// Binding binds a queue to an exchange with a binding key (and arguments, for headers exchanges).
type Binding struct {
	Exchange string
	Key      string
	Args     amqp.Table
}

// Config configures a Consumer.
type Config struct {
	// URL is the broker's AMQP URL (amqp://user:pass@host:5672/vhost); the consumer dials its own
	// connection and closes it in Close. Ignored when Conn is set.
	URL string
	// Conn is a connection the app already has; the consumer opens a channel on it and leaves the
	// connection open in Close.
	Conn *amqp.Connection

	// Queue is the baseline's queue (Q). A sandbox consumer consumes Identity.ScopedName(Queue) instead.
	Queue string
	// Bindings are the bindings of Q. The baseline consumer declares them (unless NoDeclare); a sandbox
	// consumer gives its own queue the same ones, so that it gets a copy of every message Q gets (RabbitMQ
	// has no AMQP method to read a queue's bindings). Required for a sandbox.
	Bindings []Binding
	// Durable and QueueArgs are how Q is declared (e.g. x-queue-type, x-dead-letter-exchange); the sandbox
	// queue gets the same plus x-expires.
	Durable   bool
	QueueArgs amqp.Table
	// NoDeclare: the app or its infrastructure declares and binds Q; the baseline consumer only checks that
	// it exists. The sandbox queue is always declared.
	NoDeclare bool
	// SandboxExpiry is the sandbox queue's x-expires: the broker deletes it after it had no consumer for
	// that long, so a crashed fork leaves nothing behind (default 15 min).
	SandboxExpiry time.Duration
	// Prefetch is the channel's QoS prefetch count (default 64).
	Prefetch int
	// MaxAttempts bounds the deliveries of a message the handler fails (default 2: a failed message is
	// requeued once, then rejected without requeue, which dead-letters it when QueueArgs name an
	// x-dead-letter-exchange). Quorum queues count deliveries (x-delivery-count) so any value works;
	// classic queues only flag redeliveries, so there at most 2 attempts are made. 1 never requeues.
	MaxAttempts int
	// ConsumerTag is the AMQP consumer tag (default: generated).
	ConsumerTag string

	// Identity says who the consumer is (zero: mq.IdentityFromEnv()).
	Identity mq.Identity
	// Routes gives the route table (nil: a routes.Client for Identity.Baseline, configured from the
	// environment and polling in the background until Close). When it has a WaitSynced(ctx) error method
	// (routes.Client has) the constructor waits for it.
	Routes mq.TableSource
	// SyncTimeout bounds the wait for the first route table (default 30 s).
	SyncTimeout time.Duration
	// DeleteGrace is how long Close keeps consuming a sandbox queue it is about to delete before it drains
	// it (default 2 s): the baseline's route copy may learn that the route is gone a little after this
	// consumer's did, and until then the baseline skips the sandbox's messages. Longer means more messages
	// processed twice, shorter risks losing some when the baseline's copy lags more than that.
	DeleteGrace time.Duration
	// DrainTimeout bounds how long Close then keeps consuming the queue until it has no ready message
	// (default 10 s).
	DrainTimeout time.Duration
	// Propagation reads the trace context and routing key of messages (nil: mq.DefaultPropagation).
	Propagation *mq.Propagation
	// Contexts says what the handler's context carries: mq.TraceContexts (the default) the message's trace
	// context, baggage and routing key; mq.KeyContexts its baggage and routing key only, shared by the
	// messages of one baggage value (no allocation per message).
	Contexts mq.Contexts
	// Logger receives the consumer's lifecycle and handler failures (nil: discard).
	Logger *slog.Logger
}

// Handler processes a message. ctx carries the message's trace context (unless Config.Contexts is
// mq.KeyContexts), baggage and routing key (routingkey.FromContext). A nil error acks the message; an error nacks it (see Config.MaxAttempts).
type Handler func(ctx context.Context, d *amqp.Delivery) error

// Stats counts the deliveries of a consumer by outcome.
type Stats struct {
	// Processed: the handler returned nil (acked).
	Processed uint64
	// Failed: the handler returned an error; Requeued of them were requeued, the rest rejected.
	Failed, Requeued uint64
	// Skipped by decision (acked without calling the handler).
	SkippedNoKey, SkippedRoutedAway, SkippedNotMine uint64
}

// Skipped is the sum of the skip counters.
func (s Stats) Skipped() uint64 { return s.SkippedNoKey + s.SkippedRoutedAway + s.SkippedNotMine }

// Consumer consumes one queue selectively: the baseline consumer its queue Q, a sandbox consumer its own
// queue Identity.ScopedName(Q) bound like Q. Both queues get a copy of every message; each side processes
// the messages mq.Selector gives it and acks the others. Deliveries are acked after the handler returns:
// at-least-once per queue.
type Consumer struct {
	cfg      Config
	id       mq.Identity
	sel      *mq.Selector
	prop     *mq.Propagation
	log      *slog.Logger
	src      mq.TableSource
	queue    string
	conn     *amqp.Connection
	ownConn  bool
	ch       *amqp.Channel
	stopSrc  context.CancelFunc
	srcDone  chan struct{}
	tag      string
	deleted  atomic.Bool
	closing  atomic.Bool
	mu       sync.Mutex
	closed   bool
	running  bool
	runDone  chan struct{}
	counters [6]atomic.Uint64
	keys     keyTable            // Run's goroutine only
	contexts *mq.HandlerContexts // Run's goroutine only
}

const (
	cProcessed = iota
	cFailed
	cRequeued
	cNoKey
	cRoutedAway
	cNotMine
)

// NewConsumer validates cfg, connects, declares the queue (and for a sandbox its bindings and x-expires,
// before returning, so a fork has its queue before its routes are published and no message is lost in
// between) and waits for the route table to be synced. Consuming starts with Run.
func NewConsumer(ctx context.Context, cfg Config) (*Consumer, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	c := &Consumer{cfg: cfg, id: cfg.Identity, prop: cfg.Propagation, log: cfg.Logger, tag: cfg.ConsumerTag}
	c.queue = c.id.ScopedName(cfg.Queue)
	if len(c.queue) > 255 {
		return nil, fmt.Errorf("rabbitmq: queue: %q scoped for sandbox %q is %d bytes, more than AMQP's 255", c.queue, c.id.Sandbox, len(c.queue))
	}
	if c.tag == "" {
		c.tag = "sandboxmesh-" + c.queue + "-" + randomHex()
	}
	c.log = c.log.With("queue", c.queue, "identity", c.id.String())
	fail := func(err error) (*Consumer, error) {
		c.shutdown()
		return nil, err
	}
	if cfg.Conn != nil {
		c.conn = cfg.Conn
	} else {
		conn, err := amqp.DialConfig(cfg.URL, amqp.Config{
			Dial:       amqp.DefaultDial(DefaultDialTimeout),
			Heartbeat:  10 * time.Second,
			Properties: amqp.Table{"connection_name": "sandboxmesh " + c.id.String()},
		})
		if err != nil {
			return nil, fmt.Errorf("rabbitmq: consumer %s: dial %s: %w", c.id, redactURL(cfg.URL), err)
		}
		c.conn, c.ownConn = conn, true
	}
	ch, err := c.conn.Channel()
	if err != nil {
		return fail(fmt.Errorf("rabbitmq: consumer %s: open channel: %w", c.id, err))
	}
	c.ch = ch
	if err := ch.Qos(cfg.Prefetch, 0, false); err != nil {
		return fail(fmt.Errorf("rabbitmq: consumer %s: qos prefetch %d: %w", c.id, cfg.Prefetch, err))
	}
	if err := c.declare(); err != nil {
		return fail(err)
	}
	if cfg.Routes != nil {
		c.src = cfg.Routes
	} else {
		rc, err := routes.New(routes.Config{Workload: c.id.Baseline, Logger: c.log})
		if err != nil {
			return fail(fmt.Errorf("rabbitmq: consumer %s: routes: %w", c.id, err))
		}
		sctx, cancel := context.WithCancel(context.Background())
		c.src, c.stopSrc, c.srcDone = rc, cancel, make(chan struct{})
		go func() { defer close(c.srcDone); _ = rc.Run(sctx) }()
	}
	c.sel = mq.NewSelector(c.id, c.src)
	c.keys.cache, c.contexts = c.prop.NewKeyCache(), c.prop.NewHandlerContexts()
	if w, ok := c.src.(interface{ WaitSynced(context.Context) error }); ok {
		wctx, cancel := context.WithTimeout(ctx, cfg.SyncTimeout)
		err := w.WaitSynced(wctx)
		cancel()
		if err != nil {
			return fail(fmt.Errorf("rabbitmq: consumer %s: the route table did not sync within %s (is %s reachable?): %w",
				c.id, cfg.SyncTimeout, mq.EnvRoutesURL, err))
		}
	}
	c.log.Info("consumer ready", "bindings", len(cfg.Bindings))
	return c, nil
}

func (cfg *Config) setDefaults() error {
	if cfg.Identity == (mq.Identity{}) {
		id, err := mq.IdentityFromEnv()
		if err != nil {
			return fmt.Errorf("rabbitmq: consumer config: identity: %w", err)
		}
		cfg.Identity = id
	} else if err := cfg.Identity.Validate(); err != nil {
		return fmt.Errorf("rabbitmq: consumer config: %w", err)
	}
	if cfg.Identity.Baseline.Kind == "" {
		cfg.Identity.Baseline.Kind = routeapi.KindDeployment
	}
	if err := cfg.Contexts.Validate(); err != nil {
		return fmt.Errorf("rabbitmq: consumer config: %w", err)
	}
	switch {
	case cfg.Conn == nil && cfg.URL == "":
		return errors.New("rabbitmq: consumer config: url: required (or conn)")
	case cfg.Queue == "":
		return errors.New("rabbitmq: consumer config: queue: required")
	case len(cfg.Queue) > 255:
		return fmt.Errorf("rabbitmq: consumer config: queue: %d bytes, more than AMQP's 255", len(cfg.Queue))
	case strings.HasPrefix(cfg.Queue, "amq."):
		return fmt.Errorf("rabbitmq: consumer config: queue: %q: the amq. prefix is reserved by the broker", cfg.Queue)
	case cfg.Identity.IsSandbox() && len(cfg.Bindings) == 0:
		return fmt.Errorf("rabbitmq: consumer config: bindings: required for sandbox %q (its queue gets messages only through the bindings of %q)", cfg.Identity.Sandbox, cfg.Queue)
	case cfg.SandboxExpiry < 0:
		return fmt.Errorf("rabbitmq: consumer config: sandboxExpiry: %s is negative", cfg.SandboxExpiry)
	case cfg.SandboxExpiry > 0 && cfg.SandboxExpiry < time.Millisecond:
		return fmt.Errorf("rabbitmq: consumer config: sandboxExpiry: %s is less than the broker's 1ms", cfg.SandboxExpiry)
	case cfg.Prefetch < 0 || cfg.Prefetch > 65535:
		return fmt.Errorf("rabbitmq: consumer config: prefetch: %d is not in 0..65535", cfg.Prefetch)
	case cfg.DeleteGrace < 0:
		return fmt.Errorf("rabbitmq: consumer config: deleteGrace: %s is negative", cfg.DeleteGrace)
	case cfg.MaxAttempts < 0:
		return fmt.Errorf("rabbitmq: consumer config: maxAttempts: %d is negative", cfg.MaxAttempts)
	}
	for i, b := range cfg.Bindings {
		if b.Exchange == "" {
			return fmt.Errorf("rabbitmq: consumer config: bindings[%d].exchange: required (the default exchange takes no bindings)", i)
		}
	}
	if cfg.SandboxExpiry == 0 {
		cfg.SandboxExpiry = DefaultSandboxExpiry
	}
	if cfg.Prefetch == 0 {
		cfg.Prefetch = DefaultPrefetch
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.SyncTimeout <= 0 {
		cfg.SyncTimeout = DefaultSyncTimeout
	}
	if cfg.DeleteGrace == 0 {
		cfg.DeleteGrace = DefaultDeleteGrace
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = DefaultDrainTimeout
	}
	if cfg.Propagation == nil {
		cfg.Propagation = mq.DefaultPropagation
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// declare declares and binds the consumer's queue.
func (c *Consumer) declare() error {
	cfg := c.cfg
	if !c.id.IsSandbox() && cfg.NoDeclare {
		if _, err := c.ch.QueueDeclarePassive(c.queue, cfg.Durable, false, false, false, nil); err != nil {
			return fmt.Errorf("rabbitmq: consumer %s: queue %q (noDeclare: the app declares it) does not exist: %w", c.id, c.queue, err)
		}
		return nil
	}
	args := amqp.Table{}
	for k, v := range cfg.QueueArgs {
		args[k] = v
	}
	if c.id.IsSandbox() {
		args["x-expires"] = cfg.SandboxExpiry.Milliseconds()
	}
	if _, err := c.ch.QueueDeclare(c.queue, cfg.Durable, false, false, false, args); err != nil {
		return fmt.Errorf("rabbitmq: consumer %s: declare queue %q: %w", c.id, c.queue, err)
	}
	for i, b := range cfg.Bindings {
		if err := c.ch.QueueBind(c.queue, b.Key, b.Exchange, false, b.Args); err != nil {
			return fmt.Errorf("rabbitmq: consumer %s: bindings[%d]: bind %q to exchange %q key %q: %w", c.id, i, c.queue, b.Exchange, b.Key, err)
		}
	}
	return nil
}

// Queue is the name of the queue the consumer consumes (Identity.ScopedName(Config.Queue)).
func (c *Consumer) Queue() string { return c.queue }

// Identity is the consumer's identity.
func (c *Consumer) Identity() mq.Identity { return c.id }

// Stats returns the counters.
func (c *Consumer) Stats() Stats {
	return Stats{
		Processed: c.counters[cProcessed].Load(), Failed: c.counters[cFailed].Load(), Requeued: c.counters[cRequeued].Load(),
		SkippedNoKey: c.counters[cNoKey].Load(), SkippedRoutedAway: c.counters[cRoutedAway].Load(), SkippedNotMine: c.counters[cNotMine].Load(),
	}
}

// Run consumes until ctx ends (deliveries not yet handled are then requeued) or Close is called (they are
// then handled), and returns nil then. It returns an error when the channel or connection fails; the queue
// stays, a new Consumer resumes from it. Run may be called once.
func (c *Consumer) Run(ctx context.Context, h Handler) error {
	if h == nil {
		return errors.New("rabbitmq: Run: nil handler")
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	if c.running || c.runDone != nil {
		c.mu.Unlock()
		return errors.New("rabbitmq: Run called twice")
	}
	closeCh := c.ch.NotifyClose(make(chan *amqp.Error, 1))
	deliveries, err := c.ch.Consume(c.queue, c.tag, false, false, false, false, nil)
	if err != nil {
		c.mu.Unlock()
		return fmt.Errorf("rabbitmq: consumer %s: consume %q: %w", c.id, c.queue, err)
	}
	c.running, c.runDone = true, make(chan struct{})
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.running = false
		c.mu.Unlock()
		close(c.runDone)
	}()
	stop := ctx.Done()
	requeueRest := false
	for {
		select {
		case d, ok := <-deliveries:
			if !ok {
				if c.closing.Load() || requeueRest {
					return nil
				}
				var cerr error = errors.New("channel closed")
				select {
				case e := <-closeCh:
					if e != nil {
						cerr = e
					}
				default:
				}
				return fmt.Errorf("rabbitmq: consumer %s: queue %q: deliveries stopped: %w", c.id, c.queue, cerr)
			}
			if requeueRest {
				_ = d.Nack(false, true)
				continue
			}
			if err := c.handle(ctx, &d, h); err != nil {
				return err
			}
		case <-stop:
			stop = nil
			requeueRest = true
			if err := c.ch.Cancel(c.tag, false); err != nil {
				return nil // the channel is gone: the broker requeues what was not acked
			}
		}
	}
}

// handle decides, calls the handler and acks.
func (c *Consumer) handle(ctx context.Context, d *amqp.Delivery, h Handler) error {
	key, single := c.keys.key(c.prop, d.Headers) // the key alone decides; the context is built for processed messages only
	var err error
	switch dec := c.sel.Decide(key); dec {
	case mq.Process:
		var hctx context.Context
		switch {
		case len(d.Headers) == 0:
			hctx = ctx
		case c.cfg.Contexts == mq.KeyContexts && single:
			var e *mq.Keyed
			if bag := singleTable(d.Headers).Get("baggage"); bag != "" || key != "" {
				e = c.contexts.Entry(bag, key)
			}
			hctx = c.contexts.KeyContext(ctx, e)
		case c.cfg.Contexts == mq.KeyContexts:
			hctx = c.prop.ExtractKey(ctx, HeaderCarrier(d.Headers), key)
		case single:
			hctx = c.contexts.Extract(ctx, singleTable(d.Headers), key)
		default:
			hctx = c.prop.ExtractKeyed(ctx, HeaderCarrier(d.Headers), key)
		}
		if herr := h(hctx, d); herr != nil {
			c.counters[cFailed].Add(1)
			requeue := attempt(d, c.cfg.MaxAttempts) < c.cfg.MaxAttempts
			if requeue {
				c.counters[cRequeued].Add(1)
			}
			c.log.Warn("handler failed", "messageId", d.MessageId, "redelivered", d.Redelivered, "requeue", requeue, "error", herr)
			err = d.Nack(false, requeue)
		} else {
			c.counters[cProcessed].Add(1)
			err = d.Ack(false)
		}
	case mq.SkipNoKey:
		c.counters[cNoKey].Add(1)
		err = d.Ack(false)
	case mq.SkipRoutedAway:
		c.counters[cRoutedAway].Add(1)
		err = d.Ack(false)
	default:
		c.counters[cNotMine].Add(1)
		err = d.Ack(false)
	}
	if err != nil {
		return fmt.Errorf("rabbitmq: consumer %s: queue %q: ack: %w", c.id, c.queue, err)
	}
	return nil
}

// attempt is the delivery's attempt number: from x-delivery-count (quorum queues), else 1 for a first
// delivery and max for a redelivery (classic queues say only that a message was delivered before).
func attempt(d *amqp.Delivery, max int) int {
	switch n := d.Headers["x-delivery-count"].(type) {
	case int64:
		return int(n) + 1
	case int32:
		return int(n) + 1
	case int:
		return n + 1
	}
	if d.Redelivered {
		return max
	}
	return 1
}

// routedHere reports whether the sandbox's own key is still routed to its sandbox for the baseline.
func (c *Consumer) routedHere() bool {
	return c.src.Table().RoutesTo(c.id.Baseline, c.id.RoutingKey, c.id.Sandbox)
}

// Close stops consuming and releases the channel (and the connection and route client it made). For a
// sandbox whose routing key is no longer routed to it (the sandbox is being deleted) it first keeps
// consuming for DeleteGrace, then until the queue has no ready message (bounded by DrainTimeout), handles
// what was delivered, and deletes the sandbox queue. The baseline's queue is never deleted. ctx bounds the
// grace, the drain and the wait for the running handler.
func (c *Consumer) Close(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	running, runDone := c.running, c.runDone
	c.mu.Unlock()
	var errs []error
	deleteQ := c.id.IsSandbox() && !c.routedHere()
	if deleteQ && running {
		c.drain(ctx)
	}
	if running {
		c.closing.Store(true)
		if err := c.ch.Cancel(c.tag, false); err == nil {
			select {
			case <-runDone:
			case <-ctx.Done():
				errs = append(errs, fmt.Errorf("rabbitmq: consumer %s: waiting for the handler: %w", c.id, ctx.Err()))
			}
		}
	}
	if deleteQ {
		if n, err := c.ch.QueueDelete(c.queue, false, false, false); err != nil {
			errs = append(errs, fmt.Errorf("rabbitmq: consumer %s: delete sandbox queue %q (x-expires removes it later): %w", c.id, c.queue, err))
		} else {
			c.deleted.Store(true)
			c.log.Info("sandbox queue deleted: the sandbox's key is no longer routed to it", "messagesDropped", n)
		}
	}
	c.shutdown()
	return errors.Join(errs...)
}

// Deleted reports whether Close deleted the sandbox queue.
func (c *Consumer) Deleted() bool { return c.deleted.Load() }

// drain waits DeleteGrace, then until the queue has no ready message, while Run keeps consuming.
func (c *Consumer) drain(ctx context.Context) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(c.cfg.DeleteGrace):
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.DrainTimeout)
	defer cancel()
	ch, err := c.conn.Channel()
	if err != nil {
		return
	}
	defer ch.Close()
	for {
		q, err := ch.QueueDeclarePassive(c.queue, c.cfg.Durable, false, false, false, nil)
		if err != nil || q.Messages == 0 {
			return
		}
		select {
		case <-ctx.Done():
			c.log.Warn("sandbox queue not drained before delete", "ready", q.Messages, "timeout", c.cfg.DrainTimeout)
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// shutdown closes what the consumer opened.
func (c *Consumer) shutdown() {
	if c.ch != nil {
		_ = c.ch.Close()
	}
	if c.ownConn && c.conn != nil {
		_ = c.conn.Close()
	}
	if c.stopSrc != nil {
		c.stopSrc()
		<-c.srcDone
	}
}
