package summary_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/schema"

	"connsum/modules/bootstrap"
	"connsum/modules/bootstrap/dbtest"
	"connsum/modules/catalog"
	"connsum/modules/metrics"
	"connsum/modules/retained"
	"connsum/modules/revision"
	"connsum/modules/runs"
	"connsum/modules/summary"
)

// Statement-count invariants (SPEC §7, §4.3, §4.5), counted with the bun query hook.

func countList(t *testing.T, p *summary.Projector, q summary.ListQuery) (*summary.Result, int) {
	res, n, _ := measureList(t, p, q)
	return res, n
}

// measureList runs q and returns its statement count and the length of its SQL texts (a
// statement counter that keeps them: a batch's statements pass no bun hook on PostgreSQL).
func measureList(t *testing.T, p *summary.Projector, q summary.ListQuery) (*summary.Result, int, int) {
	t.Helper()
	c := &bootstrap.StatementCounter{KeepTexts: true}
	res, err := p.List(bootstrap.WithStatementCounter(context.Background(), c), q)
	if err != nil {
		t.Fatal(err)
	}
	if res.Stats.Statements != c.Count() {
		t.Errorf("Stats.Statements = %d, the counter counted %d", res.Stats.Statements, c.Count())
	}
	bytes := 0
	for _, text := range c.Texts() {
		bytes += len(text)
	}
	if len(c.Texts()) != c.Count() {
		t.Errorf("%d texts kept for %d statements", len(c.Texts()), c.Count())
	}
	return res, c.Count(), bytes
}

func TestOverviewStatementsAreConstant(t *testing.T) {
	for _, evidence := range []string{"spine", "read_model"} {
		t.Run(evidence, func(t *testing.T) { testOverviewStatements(t, evidence) })
	}
}

// testOverviewStatements: with the spine pipeline the overview is shallow; with the read model it
// carries run evidence on every row — at the same constant statement count either way.
func testOverviewStatements(t *testing.T, evidence string) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		f := newSumFixture(t, db)
		f.connector("amazon", amazonManifest)
		f.connector("gmail", `{"display_name":"Gmail"}`)
		grow := func(from, to int) {
			for i := from; i < to; i++ {
				connector := "amazon"
				if i%2 == 1 {
					connector = "gmail"
				}
				id := fmt.Sprintf("cin_%03d", i)
				f.connection(connector, id, catalog.StatusActive)
				if i%3 == 0 {
					f.retained(id, "orders", int64(i), 10, 0)
				}
				if i%10 == 0 {
					f.add(sumRun(connector, "run_"+id, "", time.Duration(i)*time.Minute, "run.completed", sumEv{"connection_id": id})...)
				}
			}
		}
		p := f.projector(0, nil)
		if evidence == "read_model" {
			rm := runs.NewReadModelEvidence(runs.NewReadModel(db, runs.Options{}, f.clock.Now))
			p = summary.NewProjector(f.cat, retained.NewStore(db, f.clock.Now), rm, rm, f.clock.Now)
		}
		q := summary.ListQuery{Pipeline: summary.PipelineOverview}
		page := summary.ListQuery{Pipeline: summary.PipelineOverview, Limit: 3}
		filter := summary.ListQuery{Pipeline: summary.PipelineOverview, ConnectorID: "gmail"}
		grow(0, 5)
		small, nSmall, textSmall := measureList(t, p, q)
		_, _, pageSmall := measureList(t, p, page)
		_, _, filterSmall := measureList(t, p, filter)
		grow(5, 200)
		large, nLarge, textLarge := measureList(t, p, q)
		_, _, pageLarge := measureList(t, p, page)
		_, _, filterLarge := measureList(t, p, filter)
		// The SQL says the list's filter, never a list of its ids: the same text for 5 and for
		// 200 connections (a page of 3 of them, one connector's 2 and 100).
		if textSmall != textLarge || pageSmall != pageLarge || filterSmall != filterLarge || textSmall == 0 {
			t.Errorf("overview SQL text: %d bytes for 5 connections, %d for 200; page %d → %d; connector filter %d → %d: must not grow with N",
				textSmall, textLarge, pageSmall, pageLarge, filterSmall, filterLarge)
		}
		if len(small.Items) != 5 || len(large.Items) != 200 {
			t.Fatalf("rows: %d and %d, want 5 and 200", len(small.Items), len(large.Items))
		}
		if nSmall != nLarge {
			t.Errorf("overview statements: %d for 5 connections, %d for 200: must not grow with N", nSmall, nLarge)
		}
		// The catalog, the two retained reads, and with the read model the heads joined to
		// their runs.
		if want := map[string]int{"spine": 3, "read_model": 4}[evidence]; nLarge != want {
			t.Errorf("overview statements = %d, want %d", nLarge, want)
		}
		if nLarge == 0 {
			t.Error("no statements counted: is the hook installed?")
		}
		withRuns := 0
		for _, it := range large.Items {
			if evidence == "read_model" && it.Evidence != "read_model" {
				t.Errorf("%s: evidence %s, want read_model on every row", it.ConnectionID, it.Evidence)
			}
			if it.LastRun != nil {
				withRuns++
			}
		}
		if want := map[string]int{"spine": 0, "read_model": 20}[evidence]; withRuns != want {
			t.Errorf("%d overview rows carry a last run, want %d", withRuns, want)
		}
		// A page of the overview and a connector filter are constant too.
		_, nPage := countList(t, p, summary.ListQuery{Pipeline: summary.PipelineOverview, Limit: 50})
		_, nFilter := countList(t, p, summary.ListQuery{Pipeline: summary.PipelineOverview, ConnectorID: "gmail"})
		if nPage > 6 || nFilter > 6 {
			t.Errorf("overview page: %d statements, connector filter: %d, want ≤ 6", nPage, nFilter)
		}
	})
}

// seedSiblings gives connector n siblings whose runs all sit behind the same newest runs, so the
// connector's pages have the same content whatever n is: six newest failed runs of sibling 0,
// then four succeeded runs of sibling 1, then one older failed run per sibling.
func seedSiblings(f *sumFixture, connector string, n int) {
	f.connector(connector, fmt.Sprintf(`{"display_name":%q,"capabilities":{"browser_surface":{"profile_key":"%s-web"}}}`, connector, connector))
	id := func(i int) string { return fmt.Sprintf("cin_%s_%02d", connector, i) }
	key := func(i int) string { return connector + "-web:" + id(i) }
	var evs []sumEv
	for i := 0; i < n; i++ {
		f.connection(connector, id(i), catalog.StatusActive)
		evs = append(evs, sumRun(connector, fmt.Sprintf("%s_old_%02d", connector, i), key(i), time.Duration(i)*time.Minute, "run.failed", nil)...)
	}
	for i := 0; i < 4; i++ {
		evs = append(evs, sumRun(connector, fmt.Sprintf("%s_ok_%d", connector, i), key(1), 90*time.Hour+time.Duration(i)*time.Hour, "run.completed", nil)...)
	}
	for i := 0; i < 6; i++ {
		evs = append(evs, sumRun(connector, fmt.Sprintf("%s_head_%d", connector, i), key(0), 100*time.Hour+time.Duration(i)*time.Hour, "run.failed", nil)...)
	}
	f.add(evs...)
}

func TestDeepListReadsAtMostTwoPagesPerConnector(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		f := newSumFixture(t, db)
		seedSiblings(f, "few", 3)
		seedSiblings(f, "many", 30)
		f.clock.Set(sumT0.Add(200 * time.Hour))
		p := f.projector(4, nil)

		counts := map[string]int{}
		for _, c := range []string{"few", "many"} {
			res, n := countList(t, p, summary.ListQuery{Pipeline: summary.PipelineDeep, ConnectorID: c, Concurrency: 8})
			counts[c] = n
			perConnector := map[string]int{}
			for _, k := range res.Stats.Pages {
				perConnector[k.ConnectorID]++
			}
			if len(perConnector) != 1 || perConnector[c] == 0 || perConnector[c] > 2 {
				t.Errorf("%s: pages read %v, want one or two pages of %s only", c, res.Stats.Pages, c)
			}
			items := byID(res.Items)
			// Sibling 0 owns the newest runs; sibling 1 owns only successes behind the window.
			s0, s1 := items[fmt.Sprintf("cin_%s_00", c)], items[fmt.Sprintf("cin_%s_01", c)]
			if lastRunID(s0.LastRun) != c+"_head_5" || s0.LastSuccessfulRun != nil {
				t.Errorf("%s sibling 0: last_run %s success %s, want %s_head_5 and null", c, lastRunID(s0.LastRun), lastRunID(s0.LastSuccessfulRun), c)
			}
			if s1.LastRun != nil || lastRunID(s1.LastSuccessfulRun) != c+"_ok_3" {
				t.Errorf("%s sibling 1: last_run %s success %s, want null and %s_ok_3", c, lastRunID(s1.LastRun), lastRunID(s1.LastSuccessfulRun), c)
			}
		}
		if counts["few"] != counts["many"] {
			t.Errorf("deep list statements: %d for 3 siblings, %d for 30: must not grow with the number of connections", counts["few"], counts["many"])
		}

		// The full deep list over both connectors: two pages each at most, and exactly the
		// statements of the two filtered lists minus one catalog and one retained read.
		res, n := countList(t, p, summary.ListQuery{Pipeline: summary.PipelineDeep, Concurrency: 8})
		per := map[string]int{}
		for _, k := range res.Stats.Pages {
			per[k.ConnectorID]++
		}
		if per["few"] > 2 || per["many"] > 2 || len(per) != 2 {
			t.Errorf("full deep list pages: %v", res.Stats.Pages)
		}
		if len(res.Items) != 33 {
			t.Errorf("full deep list: %d rows, want 33", len(res.Items))
		}
		_, nShallow := countList(t, p, summary.ListQuery{Pipeline: summary.PipelineOverview})
		runStatements := func(c int) int { return c - nShallow }
		if got, want := runStatements(n), runStatements(counts["few"])+runStatements(counts["many"]); got != want {
			t.Errorf("full deep list spent %d statements on runs, the per-connector lists %d together", got, want)
		}
	})
}

// spySnapshot records how the retained snapshot is read.
type spySnapshot struct {
	inner retained.Snapshot
	mu    sync.Mutex
	all   []([]string)
	one   []string
	of    int
}

func (s *spySnapshot) Of(ctx context.Context, connections schema.QueryAppender) (map[string]*retained.Retained, error) {
	s.mu.Lock()
	s.of++
	s.mu.Unlock()
	return s.inner.Of(ctx, connections)
}

func (s *spySnapshot) All(ctx context.Context, ids []string) (map[string]*retained.Retained, error) {
	s.mu.Lock()
	s.all = append(s.all, ids)
	s.mu.Unlock()
	return s.inner.All(ctx, ids)
}

func (s *spySnapshot) ForConnection(ctx context.Context, id string) (*retained.Retained, error) {
	s.mu.Lock()
	s.one = append(s.one, id)
	s.mu.Unlock()
	return s.inner.ForConnection(ctx, id)
}

func (s *spySnapshot) QueueOf(b *bootstrap.Batch, connections schema.QueryAppender, out *map[string]*retained.Retained) {
	s.mu.Lock()
	if connections == nil {
		s.all = append(s.all, nil)
	} else {
		s.of++
	}
	s.mu.Unlock()
	s.inner.QueueOf(b, connections, out)
}

func (s *spySnapshot) QueueForConnection(b *bootstrap.Batch, id string, out **retained.Retained) {
	s.mu.Lock()
	s.one = append(s.one, id)
	s.mu.Unlock()
	s.inner.QueueForConnection(b, id, out)
}

func (s *spySnapshot) reset() {
	s.mu.Lock()
	s.all, s.one, s.of = nil, nil, 0
	s.mu.Unlock()
}

func TestScopedReadNeverLoadsTheGlobalRetainedSnapshot(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		f := newSumFixture(t, db)
		seedFeed(f)
		spy := &spySnapshot{inner: f.ret}
		p := f.projector(0, spy)
		for _, id := range []string{"cin_amz_a", "cin_gmail_1", "chase", "cin_nope"} {
			spy.reset()
			res, err := p.Scoped(f.ctx, id, true)
			if err != nil {
				t.Fatal(err)
			}
			for _, ids := range spy.all {
				if ids == nil {
					t.Errorf("scoped read of %s loaded the all-connections retained snapshot", id)
				} else if len(ids) != 1 {
					t.Errorf("scoped read of %s loaded retained rows of %v", id, ids)
				}
			}
			if spy.of > 0 {
				t.Errorf("scoped read of %s read retained rows by a list's filter", id)
			}
			// On PostgreSQL the rows are read under the asked id in the round trip of its
			// resolution, and once more for the connection it resolved to when that is another
			// (the connector-id fallback). On SQLite, where reads ahead cost statements, only the
			// resolved connection's rows are read, and none for an unknown id.
			var want []string
			if bootstrap.DialectOf(db) == bootstrap.Postgres {
				want = append(want, id)
			}
			if len(res.Items) == 1 && (res.Items[0].ConnectionID != id || bootstrap.DialectOf(db) != bootstrap.Postgres) {
				want = append(want, res.Items[0].ConnectionID)
			}
			if len(spy.all) != 0 || fmt.Sprint(spy.one) != fmt.Sprint(want) {
				t.Errorf("scoped read of %s: ForConnection %v All %v, want one-connection reads of %v", id, spy.one, spy.all, want)
			}
		}
		// The overview loads the snapshot once per projection.
		spy.reset()
		if _, err := p.List(f.ctx, summary.ListQuery{Pipeline: summary.PipelineOverview}); err != nil {
			t.Fatal(err)
		}
		if len(spy.all)+len(spy.one) != 1 {
			t.Errorf("overview read retained %d times (All %v, ForConnection %v), want once", len(spy.all)+len(spy.one), spy.all, spy.one)
		}
	})
}

// TestFleetHealthStatementsAreConstant: the fleet counts cost the overview's statements,
// whatever the number of connections (SPEC §7), with either evidence, and none on a cache hit.
func TestFleetHealthStatementsAreConstant(t *testing.T) {
	for _, evidence := range []string{"spine", "read_model"} {
		t.Run(evidence, func(t *testing.T) {
			dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
				f := newSumFixture(t, db)
				f.connector("amazon", amazonManifest)
				f.connector("gmail", `{"display_name":"Gmail"}`)
				grow := func(from, to int) {
					for i := from; i < to; i++ {
						connector, status := "amazon", catalog.StatusActive
						if i%2 == 1 {
							connector = "gmail"
						}
						if i%7 == 0 {
							status = catalog.StatusPaused
						}
						id := fmt.Sprintf("cin_%03d", i)
						f.connection(connector, id, status)
						if i%5 == 0 {
							f.add(sumRun(connector, "run_"+id, "", time.Duration(i)*time.Minute, "run.completed", sumEv{"connection_id": id})...)
						}
					}
				}
				var overview runs.Evidence = runs.Shallow{}
				deep := runs.Evidence(runs.NewSpineEvidence(runs.NewPageSource(db, runs.Options{}, f.clock.Now)))
				if evidence == "read_model" {
					rm := runs.NewReadModelEvidence(runs.NewReadModel(db, runs.Options{}, f.clock.Now))
					overview, deep = rm, rm
				}
				reg, err := metrics.New()
				if err != nil {
					t.Fatal(err)
				}
				m, err := summary.NewFeedMetrics(reg)
				if err != nil {
					t.Fatal(err)
				}
				p := summary.NewProjector(f.cat, f.ret, deep, overview, f.clock.Now)
				count := func(feed *summary.Feed) (*summary.FleetHealth, int) {
					t.Helper()
					var c bootstrap.StatementCounter
					fh, _, err := feed.FleetHealth(bootstrap.WithStatementCounter(context.Background(), &c), "")
					if err != nil {
						t.Fatal(err)
					}
					return fh, c.Count()
				}
				feed := summary.NewFeed(p, summary.NewNoCache[*summary.Result]("test"), f.cat, deep, m, revision.Reader{DB: db})
				grow(0, 5)
				small, nSmall := count(feed)
				grow(5, 200)
				large, nLarge := count(feed)
				if small.Connections != 5 || large.Connections != 200 {
					t.Fatalf("connections: %d and %d, want 5 and 200", small.Connections, large.Connections)
				}
				if nSmall != nLarge || nLarge == 0 || nLarge > 7 {
					t.Errorf("fleet-health statements: %d for 5 connections, %d for 200: want the same, at most 7", nSmall, nLarge)
				}
				// The revision read comes before the projection and is not one of its statements.
				if large.Stats.Statements != nLarge-1 {
					t.Errorf("Stats.Statements = %d, the hook counted %d (the projection's and the revision read)", large.Stats.Statements, nLarge)
				}
				if want := 200 / 7; large.ByStatus[catalog.StatusPaused] != want+1 || large.ByHealth["paused"] != want+1 {
					t.Errorf("paused: by_status %d by_health %d, want %d", large.ByStatus[catalog.StatusPaused], large.ByHealth["paused"], want+1)
				}
				if evidence == "read_model" && large.ByHealth["healthy"] == 0 {
					t.Errorf("read model fleet counts have no healthy connection: %v", large.ByHealth)
				}
				// Through a cache: the first read computes the overview, the second costs nothing.
				cached := summary.NewFeed(p, summary.NewOverviewCache[*summary.Result](time.Hour, f.clock.Now), f.cat, deep, m, revision.Reader{DB: db})
				if _, n := count(cached); n != nLarge {
					t.Errorf("first cached fleet-health: %d statements, want %d", n, nLarge)
				}
				if fh, n := count(cached); n != 1 || fh.Stats.Statements != 0 {
					t.Errorf("fleet-health on a cache hit: %d statements (stats %d), want 1 (the revision) and no projection", n, fh.Stats.Statements)
				}
			})
		})
	}
}

// Reads ahead (a connection's or a list's rows before it is known that they are needed) are
// made only where they share the round trip of the resolution (PostgreSQL): on SQLite an
// unknown connection or connector costs the one statement that finds nothing, and a connection
// its statements once.
func TestReadsAheadOnlyWhereTheyShareARoundTrip(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		f := newSumFixture(t, db)
		seedFeed(f)
		p := f.projector(0, nil)
		count := func(res *summary.Result, err error) int {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
			return res.Stats.Statements
		}
		known := count(p.Scoped(f.ctx, "cin_gmail_1", false))
		unknown := count(p.Scoped(f.ctx, "cin_nope", false))
		fallback := count(p.Scoped(f.ctx, "chase", false))
		empty := count(p.List(f.ctx, summary.ListQuery{Pipeline: summary.PipelineOverview, ConnectorID: "nope"}))
		full := count(p.List(f.ctx, summary.ListQuery{Pipeline: summary.PipelineOverview}))
		if bootstrap.DialectOf(db) == bootstrap.Postgres {
			// The rows are read ahead, in the resolution's round trip, also for an unknown id
			// or connector; the connector-id fallback reads its connection's rows once more.
			if unknown <= 1 || empty <= 1 || fallback <= known {
				t.Errorf("PostgreSQL statements: known %d, unknown %d, fallback %d, empty list %d", known, unknown, fallback, empty)
			}
			return
		}
		if unknown != 1 || empty != 1 || fallback != known || full <= 1 {
			t.Errorf("SQLite statements: known %d, unknown %d (want 1), fallback %d (want %d), empty list %d (want 1), full list %d", known, unknown, fallback, known, empty, full)
		}
	})
}
