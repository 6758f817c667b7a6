package summary

import (
	"context"
	"time"

	"connsum/modules/bootstrap"
	"connsum/modules/catalog"
	"connsum/modules/revision"
	"connsum/modules/runs"
)

// Changed computes the overview items a change may have changed (the change stream's
// re-projection), in the overview order, with the overview's evidence and through the same
// Project: the visible connections of its connectors and its connections, or every one for a
// change of everything. A connection of the change that is not among the items is no longer
// visible. Like the overview it costs a constant number of statements.
func (p *Projector) Changed(ctx context.Context, ch revision.Change) (*Result, error) {
	if ch.All {
		return p.List(ctx, ListQuery{Pipeline: PipelineOverview})
	}
	var counter bootstrap.StatementCounter
	ctx = bootstrap.WithStatementCounter(ctx, &counter)
	start := time.Now()
	res := newResult()
	if ch.Empty() {
		return res, nil
	}
	filter := catalog.Filter{ChangedConnectors: ch.ConnectorIDs, ChangedConnections: ch.ConnectionIDs}
	entries, err := p.catalog.Visible(ctx, filter)
	if err != nil {
		return nil, err
	}
	res.Stats.Catalog = time.Since(start)
	if err := p.fill(ctx, res, entries, scope{filter: &filter}, PipelineOverview, runs.Request{Scope: &filter}); err != nil {
		return nil, err
	}
	res.Stats.Statements = counter.Count()
	res.Stats.Total = time.Since(start)
	return res, nil
}
