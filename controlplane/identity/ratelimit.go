package identity

import (
	"fmt"
	"math"
	"sync"
	"time"
)

// Rate is a token bucket's shape: Burst tokens, one more every Every.
type Rate struct {
	Burst int
	Every time.Duration
}

// RateLimitedError says an attempt was refused and when to try again.
type RateLimitedError struct {
	// Scope is "account" or "client".
	Scope      string
	RetryAfter time.Duration
}

// Error says what was limited and when to retry.
func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("too many login attempts for this %s; retry in %d seconds", e.Scope, e.RetrySeconds())
}

// RetrySeconds is RetryAfter rounded up to whole seconds (at least 1), for a
// Retry-After header.
func (e *RateLimitedError) RetrySeconds() int {
	return max(1, int(math.Ceil(e.RetryAfter.Seconds())))
}

// maxBuckets bounds a limiter's memory: beyond it, full buckets (which
// carry no information) are dropped first.
const maxBuckets = 100_000

// buckets is a set of token buckets by key (LoginLimiter locks it).
type buckets struct {
	rate Rate
	m    map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newBuckets(r Rate) *buckets { return &buckets{rate: r, m: map[string]*bucket{}} }

// level refills b to now and returns it (a new full bucket for a new key).
func (bs *buckets) level(key string, now time.Time) *bucket {
	b := bs.m[key]
	if b == nil {
		if len(bs.m) >= maxBuckets {
			bs.prune(now)
		}
		b = &bucket{tokens: float64(bs.rate.Burst), at: now}
		bs.m[key] = b
		return b
	}
	if el := now.Sub(b.at); el > 0 && bs.rate.Every > 0 {
		b.tokens = min(float64(bs.rate.Burst), b.tokens+float64(el)/float64(bs.rate.Every))
		b.at = now
	}
	return b
}

// prune drops full buckets, then (if still too many) any half of them.
func (bs *buckets) prune(now time.Time) {
	for k := range bs.m {
		if bs.level(k, now).tokens >= float64(bs.rate.Burst) {
			delete(bs.m, k)
		}
	}
	for k := range bs.m {
		if len(bs.m) < maxBuckets/2 {
			break
		}
		delete(bs.m, k)
	}
}

// wait returns 0 when key has a token, else how long until it has one.
func (bs *buckets) wait(key string, now time.Time) time.Duration {
	b := bs.level(key, now)
	if b.tokens >= 1 {
		return 0
	}
	return time.Duration((1 - b.tokens) * float64(bs.rate.Every))
}

// take takes a token from key's bucket (it may go below zero: further
// attempts then wait longer).
func (bs *buckets) take(key string, now time.Time) {
	bs.level(key, now).tokens--
}

// LoginLimiter limits login attempts per account and per client address.
// Every attempt from a client takes a token of the client's bucket (each
// costs an argon2id hash); only failed attempts take one of the account's,
// so that guessing a password is slow and the owner still gets in. It is
// in memory: each replica limits on its own.
type LoginLimiter struct {
	mu       sync.Mutex
	accounts *buckets
	clients  *buckets
}

// DefaultAccountRate allows 5 failed logins per account, then one a minute.
var DefaultAccountRate = Rate{Burst: 5, Every: time.Minute}

// DefaultClientRate allows 30 logins per client address, then one every 2 s.
var DefaultClientRate = Rate{Burst: 30, Every: 2 * time.Second}

// NewLoginLimiter makes a limiter with per-account and per-client rates.
func NewLoginLimiter(account, client Rate) *LoginLimiter {
	return &LoginLimiter{accounts: newBuckets(account), clients: newBuckets(client)}
}

// Begin admits an attempt for account from client at now, or refuses it
// with a *RateLimitedError.
func (l *LoginLimiter) Begin(account, client string, now time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if w := l.clients.wait(client, now); w > 0 {
		return &RateLimitedError{Scope: "client", RetryAfter: w}
	}
	if w := l.accounts.wait(account, now); w > 0 {
		return &RateLimitedError{Scope: "account", RetryAfter: w}
	}
	l.clients.take(client, now)
	return nil
}

// Failed records a failed attempt for account.
func (l *LoginLimiter) Failed(account string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.accounts.take(account, now)
}
