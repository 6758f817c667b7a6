package runs

import (
	"time"

	"github.com/uptrace/bun"
	"go.uber.org/fx"

	"connsum/modules/bootstrap"

	"connsum/modules/httpx"
)

// Options configures run evidence and ingest.
type Options struct {
	PageSize       int           // runs.page_size: runs per run page
	StaleAfter     time.Duration // runs.stale_after: when a started run without terminal event is orphaned
	MaxBatchEvents int           // ingest.max_batch_events
}

// Module provides ingest, the run fold and run evidence.
var Module = fx.Module("runs",
	fx.Provide(
		NewIngester,
		func(db *bun.DB, o Options, now bootstrap.Clock) *PageSource { return NewPageSource(db, o, now) },
		fx.Annotate(NewSpineEvidence, fx.As(new(Evidence))),
		fx.Annotate(func(in *Ingester, o Options) *IngestHandlers { return NewIngestHandlers(in, o.MaxBatchEvents) },
			fx.As(new(httpx.Registrar)), fx.ResultTags(`group:"routes"`)),
	),
)
