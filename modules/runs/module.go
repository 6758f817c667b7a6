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

// Evidence sources (runs.evidence).
const (
	EvidenceReadModel = "read_model"
	EvidenceSpine     = "spine"
)

// Options configures run evidence and ingest.
type Options struct {
	PageSize       int           // runs.page_size: runs per run page
	StaleAfter     time.Duration // runs.stale_after: when a started run without terminal event is orphaned
	MaxBatchEvents int           // ingest.max_batch_events
	Evidence       string        // runs.evidence: read_model (default) or spine
}

// OverviewEvidence is the evidence the overview may carry at the cost of a shallow read: the
// read model, or nil (the overview stays shallow) with the spine pipeline.
type OverviewEvidence struct{ Evidence Evidence }

func useReadModel(o Options) bool { return o.Evidence != EvidenceSpine }

// newReadModel builds the read model and, when it is the evidence source, catches it up with
// the spine at start (after migrations: it depends on bootstrap.Ready).
func newReadModel(lc fx.Lifecycle, db *bun.DB, o Options, now bootstrap.Clock, _ *bootstrap.Ready) *ReadModel {
	rm := NewReadModel(db, o, now)
	if useReadModel(o) {
		lc.Append(fx.StartHook(func(ctx context.Context) error {
			_, err := rm.CatchUp(ctx, db)
			return err
		}))
	}
	return rm
}

// Module provides ingest, run pages, the read model and the Evidence port chosen by
// runs.evidence; with the read model it also hooks the catalog's and the ingester's writes.
var Module = fx.Module("runs",
	fx.Provide(
		newReadModel,
		func(db *bun.DB, o Options, now bootstrap.Clock) *PageSource { return NewPageSource(db, o, now) },
		func(db *bun.DB, now bootstrap.Clock, o Options, rm *ReadModel) *Ingester {
			if useReadModel(o) {
				return NewIngester(db, now, rm)
			}
			return NewIngester(db, now, nil)
		},
		func(o Options, rm *ReadModel) catalog.WriteHook {
			if useReadModel(o) {
				return rm
			}
			return nil
		},
		func(o Options, src *PageSource, rm *ReadModel) Evidence {
			if useReadModel(o) {
				return NewReadModelEvidence(rm)
			}
			return NewSpineEvidence(src)
		},
		func(o Options, ev Evidence) OverviewEvidence {
			if useReadModel(o) {
				return OverviewEvidence{Evidence: ev}
			}
			return OverviewEvidence{}
		},
		fx.Annotate(func(in *Ingester, o Options) *IngestHandlers { return NewIngestHandlers(in, o.MaxBatchEvents) },
			fx.As(new(httpx.Registrar)), fx.ResultTags(`group:"routes"`)),
	),
)
