package capture

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sandboxmesh/sandboxmesh/smarttest/diff"
)

// Sink receives the captures of a capture point. Add must never block: a sink that cannot keep up drops.
type Sink interface {
	// Add hands over one capture.
	Add(c diff.Capture)
}

// Defaults of HTTPSinkConfig.
const (
	DefaultQueueSize     = 1024
	DefaultBatchSize     = 64
	DefaultFlushInterval = time.Second
	DefaultTimeout       = 5 * time.Second
)

// ErrConfig is wrapped by HTTPSinkConfig errors.
var ErrConfig = errors.New("invalid capture sink config")

// HTTPSinkConfig configures an HTTPSink.
type HTTPSinkConfig struct {
	// URL receives POSTs whose body is a JSON array of diff.Capture (Content-Type application/json);
	// any 2xx answer accepts the batch. http or https, required.
	URL string
	// QueueSize bounds the captures waiting to be shipped (0: DefaultQueueSize); Add drops beyond it.
	QueueSize int
	// BatchSize is the most captures in one POST (0: DefaultBatchSize).
	BatchSize int
	// FlushInterval ships a partial batch this long after its first capture (0: DefaultFlushInterval).
	FlushInterval time.Duration
	// Timeout bounds one POST (0: DefaultTimeout).
	Timeout time.Duration
	// Client sends the POSTs (nil: a client with its own transport).
	Client *http.Client
	// Logger logs failed shipments (nil: discard).
	Logger *slog.Logger
}

// HTTPSink ships captures in batches to a URL. Create it with NewHTTPSink, run it with Run.
type HTTPSink struct {
	cfg   HTTPSinkConfig
	queue chan diff.Capture
	log   *slog.Logger

	captured, dropped, shipped, shipErrors prometheus.Counter
	queued                                 prometheus.GaugeFunc
	done                                   chan struct{}
	once                                   sync.Once
}

// NewHTTPSink checks cfg and registers the sink's metrics in reg (nil: not registered):
// devmesh_capture_captured_total, devmesh_capture_dropped_total, devmesh_capture_shipped_total,
// devmesh_capture_ship_errors_total and devmesh_capture_queue_length.
func NewHTTPSink(cfg HTTPSinkConfig, reg prometheus.Registerer) (*HTTPSink, error) {
	u, err := url.Parse(cfg.URL)
	switch {
	case cfg.URL == "":
		return nil, fmt.Errorf("url: required: %w", ErrConfig)
	case err != nil:
		return nil, fmt.Errorf("url %q: %v: %w", cfg.URL, err, ErrConfig)
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		return nil, fmt.Errorf("url %q: want http(s)://host/path: %w", cfg.URL, ErrConfig)
	case cfg.QueueSize < 0, cfg.BatchSize < 0, cfg.FlushInterval < 0, cfg.Timeout < 0:
		return nil, fmt.Errorf("queueSize, batchSize, flushInterval and timeout must not be negative: %w", ErrConfig)
	}
	if cfg.QueueSize == 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.FlushInterval == 0 {
		cfg.FlushInterval = DefaultFlushInterval
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2, IdleConnTimeout: 90 * time.Second}}
	}
	s := &HTTPSink{cfg: cfg, queue: make(chan diff.Capture, cfg.QueueSize), log: cfg.Logger, done: make(chan struct{})}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	s.captured = c("devmesh_capture_captured_total", "Requests carrying a capture id that were recorded.")
	s.dropped = c("devmesh_capture_dropped_total", "Captures dropped: queue full, or their batch could not be shipped.")
	s.shipped = c("devmesh_capture_shipped_total", "Captures accepted by the sink URL.")
	s.shipErrors = c("devmesh_capture_ship_errors_total", "Batches the sink URL did not accept (error or non-2xx).")
	s.queued = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "devmesh_capture_queue_length", Help: "Captures waiting to be shipped."},
		func() float64 { return float64(len(s.queue)) })
	if reg != nil {
		for _, m := range []prometheus.Collector{s.captured, s.dropped, s.shipped, s.shipErrors, s.queued} {
			if err := reg.Register(m); err != nil {
				return nil, fmt.Errorf("capture sink metrics: %w", err)
			}
		}
	}
	return s, nil
}

// Add queues c, or drops and counts it when the queue is full; it never blocks.
func (s *HTTPSink) Add(c diff.Capture) {
	s.captured.Inc()
	select {
	case s.queue <- c:
	default:
		s.dropped.Inc()
	}
}

// Run ships batches until ctx is done, then ships what is queued within one more Timeout (what is left
// after it is dropped and counted) and returns.
func (s *HTTPSink) Run(ctx context.Context) {
	defer s.once.Do(func() { close(s.done) })
	batch := make([]diff.Capture, 0, s.cfg.BatchSize)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	shipCtx := context.Background()
	flush := func() {
		if len(batch) > 0 {
			s.ship(shipCtx, batch)
			clear(batch)
			batch = batch[:0]
		}
	}
	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			drain, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
			defer cancel()
			shipCtx = drain
			for {
				select {
				case c := <-s.queue:
					batch = append(batch, c)
					if len(batch) == s.cfg.BatchSize {
						flush()
					}
				default:
					flush()
					return
				}
			}
		case c := <-s.queue:
			if len(batch) == 0 {
				timer.Reset(s.cfg.FlushInterval)
			}
			batch = append(batch, c)
			if len(batch) == s.cfg.BatchSize {
				timer.Stop()
				flush()
			}
		case <-timer.C:
			flush()
		}
	}
}

// Done is closed when Run has returned.
func (s *HTTPSink) Done() <-chan struct{} { return s.done }

// ship posts one batch; a failed batch is dropped (counted), never retried, so that a sink that is down
// costs the sidecar nothing but the bounded queue.
func (s *HTTPSink) ship(ctx context.Context, batch []diff.Capture) {
	err := s.post(ctx, batch)
	if err != nil {
		s.shipErrors.Inc()
		s.dropped.Add(float64(len(batch)))
		s.log.Warn("capture batch not shipped", "url", s.cfg.URL, "captures", len(batch), "err", err)
		return
	}
	s.shipped.Add(float64(len(batch)))
}

func (s *HTTPSink) post(ctx context.Context, batch []diff.Capture) error {
	body, err := json.Marshal(batch)
	if err != nil {
		return fmt.Errorf("encoding captures: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("capture sink %s: %w", s.cfg.URL, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		return fmt.Errorf("capture sink %s: %w", s.cfg.URL, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("capture sink %s: %s", s.cfg.URL, resp.Status)
	}
	return nil
}
