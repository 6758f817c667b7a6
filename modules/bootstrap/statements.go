package bootstrap

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/uptrace/bun"
)

// StatementCounter counts the SQL statements issued under a context. The feed uses it to report
// statements per projection, and tests use it to assert the statement-count invariants.
type StatementCounter struct{ n atomic.Int64 }

// Count returns the statements counted so far.
func (c *StatementCounter) Count() int { return int(c.n.Load()) }

type counterKey struct{}

// WithStatementCounter returns a context whose statements are added to c. Counters nest: a
// statement counts for every counter on the context chain.
func WithStatementCounter(ctx context.Context, c *StatementCounter) context.Context {
	parents, _ := ctx.Value(counterKey{}).([]*StatementCounter)
	chain := make([]*StatementCounter, 0, len(parents)+1)
	chain = append(chain, parents...)
	return context.WithValue(ctx, counterKey{}, append(chain, c))
}

// StatementHook is the bun query hook that feeds StatementCounters.
type StatementHook struct{}

// BeforeQuery implements bun.QueryHook.
func (StatementHook) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context { return ctx }

// AfterQuery implements bun.QueryHook.
func (StatementHook) AfterQuery(ctx context.Context, _ *bun.QueryEvent) {
	chain, _ := ctx.Value(counterKey{}).([]*StatementCounter)
	for _, c := range chain {
		c.n.Add(1)
	}
}

// Clock gives the current time. Every module takes it explicitly so tests can fix the time.
type Clock func() time.Time

// TimeFormat is the one stored time form on both engines: UTC with milliseconds, fixed width, so
// text order is time order.
const TimeFormat = "2006-01-02T15:04:05.000Z"

// FormatTime renders t in TimeFormat.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeFormat) }
