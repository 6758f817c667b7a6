package runs

import (
	"context"
	"time"

	"github.com/uptrace/bun"
	"go.uber.org/fx"

	"connsum/modules/bootstrap"
	"connsum/modules/catalog"
	"connsum/modules/httpx"
)

// Options configures run evidence and ingest.
type Options struct {
	PageSize       int           // runs.page_size: runs per run page
	StaleAfter     time.Duration // runs.stale_after: when a started run without terminal event is orphaned
	MaxBatchEvents int           // ingest.max_batch_events
	Evidence       Source        // runs.evidence: read_model (default) or spine
}

// The defaults of Options; app's config defaults are these same constants, so the service and a
// constructor called with zero Options agree.
const (
	// DefaultPageSize is runs.page_size when unset.
	DefaultPageSize = 64
	// DefaultStaleAfter is runs.stale_after when unset.
	DefaultStaleAfter = 30 * time.Minute
	// DefaultMaxBatchEvents is ingest.max_batch_events when unset; it is also the upper bound.
	DefaultMaxBatchEvents = MaxBatchEvents
)

// WithDefaults returns o with every unset (zero or negative) field set to its default, and
// MaxBatchEvents bounded by MaxBatchEvents. Every constructor of the package calls it, so the
// defaults live only here.
func (o Options) WithDefaults() Options {
	if o.PageSize <= 0 {
		o.PageSize = DefaultPageSize
	}
	if o.StaleAfter <= 0 {
		o.StaleAfter = DefaultStaleAfter
	}
	if o.MaxBatchEvents <= 0 || o.MaxBatchEvents > MaxBatchEvents {
		o.MaxBatchEvents = DefaultMaxBatchEvents
	}
	return o
}

// Wiring is everything runs.evidence decides, made in one place (NewWiring) so that no other
// provider, and no consumer, branches on the setting again. Deep reads (deep lists, scoped reads,
// the runs and diagnostics routes) go through Evidence, the overview through Overview, and the
// catalog's writes through Hook, which the catalog requires: a service without this module does
// not start, rather than silently leaving the read model behind.
type Wiring struct {
	fx.Out

	Evidence Evidence
	Overview Evidence `name:"overview"`
	Hook     catalog.WriteHook
	Ingester *Ingester
}

// NewWiring builds one of the two evidence configurations:
//   - read model (the default): the read model is the evidence of every read, the overview's
//     included; the catalog's writes and every append maintain it, and the start catches it up
//     with the spine (after migrations: it depends on bootstrap.Ready);
//   - spine: deep reads fold run pages, the overview stays shallow, appends maintain nothing and
//     the catalog's hook explicitly does nothing.
func NewWiring(lc fx.Lifecycle, db *bun.DB, o Options, now bootstrap.Clock, _ *bootstrap.Ready) Wiring {
	if o.Evidence == SourceSpine {
		return Wiring{Evidence: NewSpineEvidence(NewPageSource(db, o, now)), Overview: Shallow{}, Hook: NoWriteHook{},
			Ingester: NewIngester(db, now, nil)}
	}
	rm := NewReadModel(db, o, now)
	lc.Append(fx.StartHook(func(ctx context.Context) error {
		_, err := rm.CatchUp(ctx, db)
		return err
	}))
	ev := NewReadModelEvidence(rm)
	return Wiring{Evidence: ev, Overview: ev, Hook: rm, Ingester: NewIngester(db, now, rm)}
}

// NoWriteHook is the catalog.WriteHook of the spine configuration, where no derived state
// follows the catalog's writes.
type NoWriteHook struct{}

// ConnectionCreated implements catalog.WriteHook.
func (NoWriteHook) ConnectionCreated(context.Context, bun.Tx, *catalog.Connection, *catalog.Connector) error {
	return nil
}

// ProfileKeyChanged implements catalog.WriteHook.
func (NoWriteHook) ProfileKeyChanged(context.Context, bun.Tx, string) error { return nil }

// Module provides ingest, the ingest route and the evidence configuration runs.evidence names
// (NewWiring).
var Module = fx.Module("runs",
	fx.Provide(
		NewWiring,
		fx.Annotate(NewIngestHandlers, fx.As(new(httpx.Registrar)), fx.ResultTags(`group:"routes"`)),
	),
)
