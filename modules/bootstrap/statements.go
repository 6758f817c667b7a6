package bootstrap

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/schema"
)

// StatementCounter counts the SQL statements issued under a context. The feed uses it to report
// statements per projection, and tests use it to assert the statement-count invariants. With
// KeepTexts it also keeps each statement's SQL text: a statement sent in a Batch passes no bun
// query hook on PostgreSQL, so whoever wants the texts of a read (the floor of `bench api`,
// the tests of the SQL's size) reads them here, where both paths report.
type StatementCounter struct {
	n atomic.Int64
	// KeepTexts makes Texts return the SQL texts counted.
	KeepTexts bool

	mu    sync.Mutex
	texts []string
}

// Count returns the statements counted so far.
func (c *StatementCounter) Count() int { return int(c.n.Load()) }

// Texts returns the SQL texts of the statements counted so far, in the order they were sent
// (nil unless KeepTexts).
func (c *StatementCounter) Texts() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.texts...)
}

func (c *StatementCounter) add(query string) {
	c.n.Add(1)
	if c.KeepTexts {
		c.mu.Lock()
		c.texts = append(c.texts, query)
		c.mu.Unlock()
	}
}

type counterKey struct{}

// WithStatementCounter returns a context whose statements are added to c. Counters nest: a
// statement counts for every counter on the context chain.
func WithStatementCounter(ctx context.Context, c *StatementCounter) context.Context {
	parents, _ := ctx.Value(counterKey{}).([]*StatementCounter)
	chain := make([]*StatementCounter, 0, len(parents)+1)
	chain = append(chain, parents...)
	return context.WithValue(ctx, counterKey{}, append(chain, c))
}

// countStatement adds the statement query to every counter on ctx.
func countStatement(ctx context.Context, query string) {
	chain, _ := ctx.Value(counterKey{}).([]*StatementCounter)
	for _, c := range chain {
		c.add(query)
	}
}

// StatementHook is the bun query hook that feeds StatementCounters.
type StatementHook struct{}

// BeforeQuery implements bun.QueryHook.
func (StatementHook) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context { return ctx }

// AfterQuery implements bun.QueryHook.
func (StatementHook) AfterQuery(ctx context.Context, ev *bun.QueryEvent) {
	countStatement(ctx, ev.Query)
}

// Clock gives the current time. Every module takes it explicitly so tests can fix the time.
type Clock func() time.Time

// TimeFormat is the one stored time form on both engines: UTC with milliseconds, fixed width, so
// text order is time order.
const TimeFormat = "2006-01-02T15:04:05.000Z"

// FormatTime renders t in TimeFormat.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeFormat) }

// ExecJoined runs statements in order in one round trip on PostgreSQL: their texts (bun formats
// every argument into the text, so nothing is prepared) joined into one simple-protocol Exec,
// which the server runs in order inside the caller's transaction, stopping at the first error. A
// batch's short tail statements would otherwise cost a round trip each. SQLite runs in process
// (no round trip to save): each statement is executed on its own.
func ExecJoined(ctx context.Context, db bun.IDB, stmts ...schema.QueryAppender) error {
	gen := db.NewRaw("").DB().QueryGen()
	texts := make([]string, 0, len(stmts))
	for _, s := range stmts {
		b, err := s.AppendQuery(gen, nil)
		if err != nil {
			return err
		}
		texts = append(texts, string(b))
	}
	if DialectOf(db) != Postgres {
		for _, q := range texts {
			if _, err := db.ExecContext(ctx, q); err != nil {
				return err
			}
		}
		return nil
	}
	if len(texts) == 0 {
		return nil
	}
	_, err := db.ExecContext(ctx, strings.Join(texts, ";\n"))
	return err
}
