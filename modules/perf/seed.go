// Package perf holds the data profiles that `connsum seed` loads and the `connsum bench`
// harnesses. It writes through the modules' own stores, so seeded data passes the same
// validation as data sent over HTTP.
package perf

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"time"

	"github.com/uptrace/bun"

	"connsum/modules/bootstrap"
	"connsum/modules/catalog"
	"connsum/modules/retained"
	"connsum/modules/runs"
)

// SeedStats counts what a profile loaded.
type SeedStats struct {
	Connectors, Connections, Events int
}

// connectorSpec describes one connector of a profile and its connections.
type connectorSpec struct {
	id, name, profileKey string
	browser, unlisted    bool
	streams              []string
	maxStaleness         int64
	connections          []connectionSpec
}

type connectionSpec struct {
	name, kind, binding, status string
	runs                        int
	failRate                    float64
}

// Seed loads a named profile. The data is deterministic for a given seed: times are laid out
// backwards from the current minute, so the demo shows the same states whenever it is seeded
// (the newest runs end at least 13 minutes before it; a run left in progress stays so for
// runs.stale_after from its last event), and every connection is created before its first run.
func Seed(ctx context.Context, db *bun.DB, profile string, seed int64, progress io.Writer) (SeedStats, error) {
	var specs []connectorSpec
	switch profile {
	case "demo":
		specs = demoProfile()
	case "live":
		specs = liveProfile()
	case "fleet":
		specs = fleetProfile()
	case "fleet10k":
		specs = fleet10kProfile()
	default:
		return SeedStats{}, fmt.Errorf("unknown profile %q (demo, live, fleet, fleet10k)", profile)
	}
	return load(ctx, db, specs, seed, progress)
}

// SeedIfEmpty seeds profile into the database at dbURL when it has no connector yet.
func SeedIfEmpty(ctx context.Context, dbURL, profile string, seed int64, progress io.Writer) (bool, error) {
	db, err := bootstrap.OpenMigrated(ctx, dbURL, 4)
	if err != nil {
		return false, err
	}
	defer db.Close()
	n, err := db.NewSelect().Table("connectors").Count(ctx)
	if err != nil || n > 0 {
		return false, err
	}
	_, err = Seed(ctx, db, profile, seed, progress)
	return err == nil, err
}

// profiles are the seeded profiles by name.
var profiles = map[string]func() []connectorSpec{"demo": demoProfile, "live": liveProfile, "fleet": fleetProfile, "fleet10k": fleet10kProfile}

// ProfileOf names the profile the database at dbURL holds, by its connectors and connections
// (the benches' own bench-* connectors aside): "demo", "live", "fleet", or "unknown (N
// connectors, M connections)" for data no profile made.
func ProfileOf(ctx context.Context, dbURL string) (string, error) {
	db, err := bootstrap.OpenMigrated(ctx, dbURL, 2)
	if err != nil {
		return "", err
	}
	defer db.Close()
	connectors, err := db.NewSelect().Table("connectors").Where("connector_id NOT LIKE 'bench-%'").Count(ctx)
	if err != nil {
		return "", err
	}
	connections, err := db.NewSelect().Table("connections").Where("connector_id NOT LIKE 'bench-%'").Count(ctx)
	if err != nil {
		return "", err
	}
	for _, name := range []string{"demo", "live", "fleet", "fleet10k"} {
		specs := profiles[name]()
		n := 0
		for _, c := range specs {
			n += len(c.connections)
		}
		if connectors == int64(len(specs)) && connections == int64(n) {
			return name, nil
		}
	}
	return fmt.Sprintf("unknown (%d connectors, %d connections)", connectors, connections), nil
}

func demoProfile() []connectorSpec {
	return []connectorSpec{
		{id: "amazon", name: "Amazon", profileKey: "amazon-shopping", browser: true, streams: []string{"orders", "returns"}, maxStaleness: 86400,
			connections: []connectionSpec{
				{name: "Amazon — personal", kind: "browser_collector", binding: "personal", runs: 90, failRate: 0.1},
				{name: "Amazon — work", kind: "browser_collector", binding: "work", runs: 60, failRate: 0.35},
				{name: "Amazon — family", kind: "browser_collector", binding: "family", runs: 40, failRate: 0.2},
				{name: "Amazon — new enrollment", kind: "browser_collector", binding: "shell", status: catalog.StatusDraft, runs: 6, failRate: 1},
			}},
		{id: "chase", name: "Chase", browser: true, streams: []string{"transactions", "statements"}, maxStaleness: 86400,
			connections: []connectionSpec{
				{name: "Chase — checking", kind: "browser_collector", binding: "checking", runs: 80, failRate: 0.15},
				{name: "Chase — business", kind: "browser_collector", binding: "business", runs: 50, failRate: 0.3},
				{name: "Chase — draft", kind: "browser_collector", binding: "shell", status: catalog.StatusDraft, runs: 4, failRate: 1},
			}},
		{id: "gmail", name: "Gmail", streams: []string{"messages", "labels"}, maxStaleness: 3600,
			connections: []connectionSpec{{name: "Gmail", binding: "me@example.com", runs: 150, failRate: 0.05}}},
		{id: "slack", name: "Slack", streams: []string{"messages", "channels"}, maxStaleness: 7200,
			connections: []connectionSpec{{name: "Slack — team", binding: "team", runs: 120, failRate: 0.08}}},
		{id: "apple-health", name: "Apple Health", streams: []string{"workouts", "heart_rate"}, maxStaleness: 172800,
			connections: []connectionSpec{{name: "iPhone", kind: "local_device", binding: "iphone", runs: 60, failRate: 0.05}}},
		{id: "github", name: "GitHub", streams: []string{"repositories", "issues"},
			connections: []connectionSpec{{name: "GitHub (old account)", binding: "old", status: catalog.StatusRevoked, runs: 30, failRate: 0.1}}},
		{id: "spotify", name: "Spotify", streams: []string{"plays"}, maxStaleness: 86400,
			connections: []connectionSpec{{name: "Spotify", binding: "me", status: catalog.StatusPaused, runs: 40, failRate: 0.1}}},
		{id: "internal-probe", name: "Internal probe", unlisted: true, streams: []string{"pings"},
			connections: []connectionSpec{{name: "Probe", binding: "probe", runs: 20, failRate: 0}}},
	}
}

// liveProfile is a heavy owner: 45 connectors (15 of them catalogue-only), 30 connections with
// ~10 K runs each (≈1.5 M events), browser and non-browser, draft shells with their own runs.
func liveProfile() []connectorSpec {
	var out []connectorSpec
	for i := 0; i < 45; i++ {
		spec := connectorSpec{id: fmt.Sprintf("source%02d", i), name: fmt.Sprintf("Source %02d", i), maxStaleness: 86400,
			streams: []string{"items", "events", "attachments", "history", "meta"}}
		if i%3 == 0 {
			spec.browser, spec.profileKey = true, fmt.Sprintf("profile-%02d", i)
		}
		switch {
		case i < 10: // busy connectors: two accounts each plus, for browser ones, a draft shell
			for j := 0; j < 2; j++ {
				spec.connections = append(spec.connections, connectionSpec{name: fmt.Sprintf("Source %02d — account %d", i, j),
					binding: fmt.Sprintf("acct%d", j), kind: "browser_collector", runs: 12000, failRate: 0.12})
			}
			if spec.browser {
				spec.connections = append(spec.connections, connectionSpec{name: "draft shell", binding: "shell",
					kind: "browser_collector", status: "draft", runs: 200, failRate: 1})
			}
		case i < 20:
			spec.connections = []connectionSpec{{name: fmt.Sprintf("Source %02d", i), binding: "main", runs: 12000, failRate: 0.08}}
		}
		if !spec.browser {
			for j := range spec.connections {
				spec.connections[j].kind = "account"
			}
		}
		out = append(out, spec)
	}
	return out
}

// fleetProfile has many connections per connector (1 000 over 100 connectors, ≈2 M events), for
// the slope in the number of connections.
func fleetProfile() []connectorSpec {
	var out []connectorSpec
	for i := 0; i < 100; i++ {
		spec := connectorSpec{id: fmt.Sprintf("fleet%03d", i), name: fmt.Sprintf("Fleet %03d", i), maxStaleness: 86400,
			streams: []string{"items", "events"}, browser: i%2 == 0, profileKey: fmt.Sprintf("fleet-profile-%03d", i)}
		kind := "account"
		if spec.browser {
			kind = "browser_collector"
		}
		for j := 0; j < 10; j++ {
			spec.connections = append(spec.connections, connectionSpec{name: fmt.Sprintf("Fleet %03d — %d", i, j),
				binding: fmt.Sprintf("n%d", j), kind: kind, runs: 400, failRate: 0.1})
		}
		out = append(out, spec)
	}
	return out
}

// fleet10kProfile is the fleet at the scale of the floor targets: 10 000 connections over 100
// connectors (half of them browser connectors), 50 runs each (≈2.2 M events).
func fleet10kProfile() []connectorSpec {
	out := fleetProfile()
	for i := range out {
		kind := out[i].connections[0].kind
		conns := make([]connectionSpec, 0, 100)
		for j := 0; j < 100; j++ {
			conns = append(conns, connectionSpec{name: fmt.Sprintf("Fleet %03d — %d", i, j),
				binding: fmt.Sprintf("n%d", j), kind: kind, runs: 50, failRate: 0.1})
		}
		out[i].connections = conns
	}
	return out
}

// load writes specs through the catalog, ingest and retained stores.
func load(ctx context.Context, db *bun.DB, specs []connectorSpec, seed int64, progress io.Writer) (SeedStats, error) {
	rng := rand.New(rand.NewSource(seed))
	base := time.Now().UTC().Truncate(time.Minute)
	clock := func() time.Time { return base }
	// Seeds maintain the run read model like the service does.
	rm := runs.NewReadModel(db, runs.Options{}, time.Now)
	cat := catalog.NewStore(db, clock).WithHook(rm)
	ing := runs.NewIngester(db, time.Now, rm)
	ret := retained.NewStore(db, clock)
	var st SeedStats
	var batch []json.RawMessage
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		events := make([]*runs.Event, len(batch))
		for i, raw := range batch {
			e, err := runs.ParseEvent(raw, fmt.Sprintf("seed[%d]", i))
			if err != nil {
				return err
			}
			events[i] = e
		}
		if _, err := ing.Append(ctx, events); err != nil {
			return err
		}
		st.Events += len(batch)
		batch = batch[:0]
		return nil
	}
	for ci, spec := range specs {
		manifest := map[string]any{"display_name": spec.name, "version": fmt.Sprintf("1.%d.0", ci)}
		var streams []map[string]string
		for _, s := range spec.streams {
			streams = append(streams, map[string]string{"name": s})
		}
		manifest["streams"] = streams
		caps := map[string]any{}
		if spec.maxStaleness > 0 {
			caps["refresh_policy"] = map[string]any{"maximum_staleness_seconds": spec.maxStaleness}
		}
		if spec.browser {
			caps["browser_surface"] = map[string]any{"profile_key": spec.profileKey}
		}
		if spec.unlisted {
			caps["public_listing"] = map[string]any{"listed": false}
		}
		manifest["capabilities"] = caps
		raw, _ := json.Marshal(manifest)
		m, err := catalog.ParseManifest(raw)
		if err != nil {
			return st, err
		}
		connector, _, err := cat.PutConnector(ctx, spec.id, m)
		if err != nil {
			return st, err
		}
		st.Connectors++
		// Every connection of the connector is created before the oldest run of any of them,
		// in the order of the spec (the feed's order inside a connector is by creation).
		var span time.Duration
		for _, cs := range spec.connections {
			span = max(span, time.Duration(cs.runs)*runGap(cs.runs)+2*time.Hour)
		}
		for ni, cs := range spec.connections {
			kind := cs.kind
			if kind == "" {
				kind = "account"
			}
			status := cs.status
			if status == "" {
				status = catalog.StatusActive
			}
			name := cs.name
			conn, _, err := cat.CreateConnection(ctx, catalog.ConnectionInput{ConnectorID: spec.id, DisplayName: &name,
				Status: status, SourceKind: kind, SourceBindingKey: cs.binding})
			if err != nil {
				return st, err
			}
			// Spread created_at so the feed order inside a connector is by creation.
			if _, err := db.NewUpdate().Table("connections").Set("created_at = ?", bootstrap.FormatTime(base.Add(-span+time.Duration(ni)*time.Minute))).
				Where("connection_id = ?", conn.ConnectionID).Exec(ctx); err != nil {
				return st, err
			}
			st.Connections++
			key := catalog.ExpectedProfileKey(conn, connector)
			for _, ev := range runEvents(rng, spec, cs, conn.ConnectionID, key, base) {
				batch = append(batch, ev)
				if len(batch) >= 5000 {
					if err := flush(); err != nil {
						return st, err
					}
				}
			}
			if status == catalog.StatusDraft {
				continue
			}
			for _, s := range spec.streams {
				n := int64(rng.Intn(5000))
				last := bootstrap.FormatTime(base.Add(-time.Duration(rng.Intn(72)) * time.Hour))
				f := retained.Figures{RecordCount: n, RecordJSONBytes: n * int64(200+rng.Intn(800)),
					RecordChangesCount: n / 10, RecordChangesJSONBytes: n * 40, BlobCount: int64(rng.Intn(50)),
					BlobBytes: int64(rng.Intn(20 << 20)), LastRecordAt: &last}
				if _, err := ret.Put(ctx, conn.ConnectionID, s, f); err != nil {
					return st, err
				}
			}
			if progress != nil {
				fmt.Fprintf(progress, "\rseeding: %d/%d connectors, %d connections, %d events", ci+1, len(specs), st.Connections, st.Events+len(batch))
			}
		}
	}
	if err := flush(); err != nil {
		return st, err
	}
	if progress != nil {
		fmt.Fprintln(progress)
	}
	// Fresh planner statistics: right after a bulk load they are missing or stale.
	if _, err := db.ExecContext(ctx, "ANALYZE"); err != nil {
		return st, err
	}
	return st, nil
}

// runGap is the time between a connection's runs: the more runs, the closer.
func runGap(runs int) time.Duration {
	switch {
	case runs > 1000:
		return 30 * time.Minute
	case runs > 100:
		return 2 * time.Hour
	}
	return 6 * time.Hour
}

// runEvents lays out cs.runs runs backwards from base, newest first in time. Browser runs carry
// data.browser_surface keyed to the connection's expected profile key; other runs carry the
// connection id explicitly. Some browser runs fail at the surface stage.
func runEvents(rng *rand.Rand, spec connectorSpec, cs connectionSpec, connID, key string, base time.Time) []json.RawMessage {
	var out []json.RawMessage
	gap := runGap(cs.runs)
	for r := 0; r < cs.runs; r++ {
		runID := fmt.Sprintf("run_%s_%04d", connID[4:12], r)
		// A run's events span at most ~12 minutes from its start: 13 minutes back keeps every
		// event in the past. The newest run starts either recently (a run left running is then
		// in progress for at least 12 minutes after seeding) or over 43 minutes back (a run left
		// running is orphaned at once), never in between: a demo started at any moment shows
		// the same states, and keeps them for a while.
		jitter := time.Duration(rng.Intn(3600)) * time.Second
		if r == 0 && jitter < 30*time.Minute {
			jitter %= 5 * time.Minute
		}
		start := base.Add(-time.Duration(r)*gap - jitter - 13*time.Minute)
		evID := 0
		emit := func(typ, status string, at time.Time, data map[string]any) {
			evID++
			e := map[string]any{"event_id": fmt.Sprintf("%s_e%d", runID, evID), "event_type": typ,
				"occurred_at": at.Format(time.RFC3339Nano), "run_id": runID, "source_kind": "connector", "source_id": spec.id}
			if status != "" {
				e["status"] = status
			}
			if data == nil {
				data = map[string]any{}
			}
			if spec.browser {
				bs := map[string]any{"pending_run_id": runID, "browser_surface_lease_id": fmt.Sprintf("lease_%s", runID),
					"browser_surface_profile_key": key, "browser_surface_status": "leased"}
				if v, ok := data["_bs_status"]; ok {
					bs["browser_surface_status"] = v
					delete(data, "_bs_status")
				}
				if v, ok := data["_bs_wait"]; ok {
					bs["browser_surface_wait_reason"] = v
					delete(data, "_bs_wait")
				}
				data["browser_surface"] = bs
			} else {
				e["connection_id"] = connID
			}
			if len(data) > 0 {
				e["data"] = data
			}
			raw, _ := json.Marshal(e)
			out = append(out, raw)
		}
		roll := rng.Float64()
		if spec.browser && roll < 0.08 {
			wait := []string{"capacity_full", "surface_start_failed", "surface_readiness_timeout"}[rng.Intn(3)]
			emit("run.browser_surface_requested", "waiting_for_browser_surface", start, map[string]any{"_bs_status": "waiting_for_browser_surface", "_bs_wait": wait})
			emit("run.browser_surface_failed", "surface_failed", start.Add(90*time.Second), map[string]any{"_bs_status": "surface_failed", "_bs_wait": wait})
			continue
		}
		if spec.browser {
			emit("run.browser_surface_leased", "leased", start.Add(-20*time.Second), map[string]any{"_bs_status": "leased"})
		}
		emit("run.started", "running", start, nil)
		t := start
		for p := 0; p < 1+rng.Intn(3); p++ {
			t = t.Add(time.Duration(20+rng.Intn(200)) * time.Second)
			emit("run.progress", "running", t, map[string]any{"records": rng.Intn(500)})
		}
		t = t.Add(time.Duration(5+rng.Intn(60)) * time.Second)
		if r == 0 && cs.status == "" && rng.Float64() < 0.3 && cs.failRate < 1 {
			continue // still running
		}
		if rng.Float64() < cs.failRate {
			reason := []string{"login_required", "rate_limited", "mfa_timeout", "upstream_5xx"}[rng.Intn(4)]
			emit("run.failed", "failed", t, map[string]any{"reason": reason})
		} else {
			emit("run.completed", "succeeded", t, map[string]any{"known_gaps": []string{},
				"collection_facts": map[string]any{"records_seen": rng.Intn(2000)}})
		}
	}
	return out
}
