package catalog_test

import (
	"context"
	"sync"
	"testing"

	"github.com/uptrace/bun"

	"connsum/modules/bootstrap/dbtest"
	"connsum/modules/catalog"
)

// TestConnectorConcurrentReads reads one stored *Connector from two goroutines: the getters only
// read (the manifest is decoded when the row is scanned), so `go test -race` finds nothing.
func TestConnectorConcurrentReads(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		s := catalog.NewStore(db, stepClock())
		m := mustManifest(t, `{"display_name":"Shop","streams":[{"name":"orders"},{"name":"returns"}],"capabilities":{"refresh_policy":{"maximum_staleness_seconds":60}}}`)
		if _, _, err := s.PutConnector(ctx, "shop", m); err != nil {
			t.Fatal(err)
		}
		k, err := s.Connector(ctx, "shop")
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if got := k.Streams(); len(got) != 2 || got[0] != "orders" || got[1] != "returns" {
					t.Errorf("Streams() = %v", got)
				}
				if k.MaxStalenessSeconds() != 60 || k.RefreshPolicy() == nil {
					t.Errorf("refresh policy = %s, %d", k.RefreshPolicy(), k.MaxStalenessSeconds())
				}
			}()
		}
		wg.Wait()
	})
}
