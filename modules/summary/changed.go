package summary

import (
	"context"

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
	if ch.Empty() {
		return newResult(), nil
	}
	filter := catalog.Filter{ChangedConnectors: ch.ConnectorIDs, ChangedConnections: ch.ConnectionIDs}
	return p.list(ctx, filter, PipelineOverview, runs.Request{}, nil)
}
