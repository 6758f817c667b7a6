package runs_test

import (
	"testing"
	"time"

	"connsum/modules/runs"
)

// TestOptionsWithDefaults pins the one place the defaults live: runs.page_size 64,
// runs.stale_after 30m, ingest.max_batch_events 5000 (also its upper bound).
func TestOptionsWithDefaults(t *testing.T) {
	got := runs.Options{}.WithDefaults()
	if got.PageSize != 64 || got.StaleAfter != 30*time.Minute || got.MaxBatchEvents != 5000 {
		t.Errorf("Options{}.WithDefaults() = %+v", got)
	}
	set := runs.Options{PageSize: 4, StaleAfter: time.Minute, MaxBatchEvents: 10}.WithDefaults()
	if set.PageSize != 4 || set.StaleAfter != time.Minute || set.MaxBatchEvents != 10 {
		t.Errorf("set options changed: %+v", set)
	}
	if n := (runs.Options{MaxBatchEvents: runs.MaxBatchEvents + 1}).WithDefaults().MaxBatchEvents; n != runs.MaxBatchEvents {
		t.Errorf("MaxBatchEvents above the bound = %d, want %d", n, runs.MaxBatchEvents)
	}
}
