package runs

import (
	"time"

	"go.uber.org/fx"

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
		fx.Annotate(func(in *Ingester, o Options) *IngestHandlers { return NewIngestHandlers(in, o.MaxBatchEvents) },
			fx.As(new(httpx.Registrar)), fx.ResultTags(`group:"routes"`)),
	),
)
