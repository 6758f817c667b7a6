package catalog_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"regexp"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"connsum/modules/bootstrap/dbtest"
	"connsum/modules/catalog"
	"connsum/modules/httpx"
)

var timeRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$`)

// specConnectionID is SPEC §1.2's derived id, computed here independently of the package.
func specConnectionID(connectorID, kind, key string) string {
	sum := sha256.Sum256([]byte("owner_local\n" + connectorID + "\n" + kind + "\n" + key))
	return "cin_" + hex.EncodeToString(sum[:])[:24]
}

// stepClock returns a clock that advances one second per call, so created/updated times differ.
func stepClock() func() time.Time {
	t := time.Date(2026, 11, 20, 8, 0, 0, 0, time.FixedZone("CET", 3600))
	return func() time.Time { t = t.Add(time.Second); return t }
}

func mustManifest(t *testing.T, raw string) catalog.Manifest {
	t.Helper()
	m, err := catalog.ParseManifest([]byte(raw))
	if err != nil {
		t.Fatalf("ParseManifest(%s): %v", raw, err)
	}
	return m
}

func countRows(t *testing.T, db *bun.DB, table string) int {
	t.Helper()
	n, err := db.NewSelect().Table(table).Count(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return int(n)
}

func TestDerivedConnectionID(t *testing.T) {
	for _, c := range [][3]string{{"amazon", "account", "default"}, {"chase", "browser_collector", "shell-2"}, {"a", "manual", "x\ny"}} {
		got := catalog.DerivedConnectionID(c[0], c[1], c[2])
		if want := specConnectionID(c[0], c[1], c[2]); got != want {
			t.Errorf("DerivedConnectionID(%q) = %s, want %s", c, got, want)
		}
		if !catalog.ValidConnectionID(got) || len(got) != len("cin_")+24 {
			t.Errorf("derived id %s is not a valid 28-char connection id", got)
		}
	}
	if catalog.DerivedConnectionID("amazon", "account", "a") == catalog.DerivedConnectionID("amazon", "account", "b") {
		t.Error("different binding keys derive the same id")
	}
}

func TestExpectedProfileKey(t *testing.T) {
	pk := "  amazon-shopping "
	blank := "   "
	amazon := &catalog.Connector{ConnectorID: "amazon", ProfileKey: &pk}
	cases := []struct {
		conn      *catalog.Connection
		connector *catalog.Connector
		want      string
	}{
		// SPEC §1.3 example.
		{&catalog.Connection{ConnectionID: "cin_ab12", ConnectorID: "amazon"}, amazon, "amazon-shopping:cin_ab12"},
		// Legacy row: connection id equals the connector id.
		{&catalog.Connection{ConnectionID: "amazon", ConnectorID: "amazon"}, amazon, "amazon-shopping"},
		{&catalog.Connection{ConnectionID: "cin_x", ConnectorID: "chase"}, &catalog.Connector{ConnectorID: "chase"}, "chase:cin_x"},
		{&catalog.Connection{ConnectionID: "cin_x", ConnectorID: "chase"}, &catalog.Connector{ConnectorID: "chase", ProfileKey: &blank}, "chase:cin_x"},
		{&catalog.Connection{ConnectionID: "chase", ConnectorID: "chase"}, nil, "chase"},
	}
	for _, c := range cases {
		if got := catalog.ExpectedProfileKey(c.conn, c.connector); got != c.want {
			t.Errorf("ExpectedProfileKey(%s) = %q, want %q", c.conn.ConnectionID, got, c.want)
		}
	}
}

func TestPutConnectorCreatesThenReplaces(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		s := catalog.NewStore(db, stepClock())
		c, created, err := s.PutConnector(ctx, "amazon", mustManifest(t, `{"display_name":"Amazon","version":"1.4.0","x_extra":{"k":[1,2]},
			"streams":[{"name":"orders"},{"name":"returns"}],
			"capabilities":{"refresh_policy":{"maximum_staleness_seconds":86400},"browser_surface":{"profile_key":" amazon-shopping "}}}`))
		if err != nil || !created {
			t.Fatalf("first PutConnector = created %v, %v", created, err)
		}
		if !c.Listed || c.Version == nil || *c.Version != "1.4.0" || !timeRE.MatchString(c.CreatedAt) {
			t.Errorf("stored connector = %+v", c)
		}
		c2, created, err := s.PutConnector(ctx, "amazon", mustManifest(t, `{"display_name":"Amazon 2","capabilities":{"public_listing":{"listed":false}}}`))
		if err != nil || created {
			t.Fatalf("second PutConnector = created %v, %v", created, err)
		}
		got, err := s.Connector(ctx, "amazon")
		if err != nil {
			t.Fatal(err)
		}
		if got.DisplayName != "Amazon 2" || got.Listed || got.Version != nil || got.CreatedAt != c.CreatedAt || got.UpdatedAt == c.UpdatedAt {
			t.Errorf("replaced connector = %+v (first created_at %s updated_at %s)", got, c.CreatedAt, c.UpdatedAt)
		}
		if c2.CreatedAt != c.CreatedAt {
			t.Errorf("replace returned created_at %s, want the original %s", c2.CreatedAt, c.CreatedAt)
		}
		if n := countRows(t, db, "connectors"); n != 1 {
			t.Errorf("connectors rows = %d, want 1", n)
		}
		if _, err := s.Connector(ctx, "chase"); !errors.Is(err, catalog.ErrNotFound) {
			t.Errorf("unknown connector error = %v, want ErrNotFound", err)
		}
	})
}

func TestManifestKeepsUnknownKeysAndReadsStreams(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		s := catalog.NewStore(db, stepClock())
		if _, _, err := s.PutConnector(ctx, "amazon", mustManifest(t, `{"display_name":"Amazon","x_extra":{"k":[1,2]},
			"streams":[{"name":"orders"},{"name":"returns"}],"capabilities":{"refresh_policy":{"maximum_staleness_seconds":86400}}}`)); err != nil {
			t.Fatal(err)
		}
		got, err := s.Connector(ctx, "amazon")
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(got.Manifest, &m); err != nil {
			t.Fatalf("stored manifest %q: %v", got.Manifest, err)
		}
		if x, _ := m["x_extra"].(map[string]any); x == nil || len(x["k"].([]any)) != 2 {
			t.Errorf("unknown key not kept: %s", got.Manifest)
		}
		if st := got.Streams(); len(st) != 2 || st[0] != "orders" || st[1] != "returns" {
			t.Errorf("Streams() = %v", st)
		}
		if got.MaxStalenessSeconds() != 86400 {
			t.Errorf("MaxStalenessSeconds() = %d", got.MaxStalenessSeconds())
		}
	})
}

func TestCreateConnection(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		s := catalog.NewStore(db, stepClock())
		if _, _, err := s.PutConnector(ctx, "amazon", mustManifest(t, `{"display_name":"Amazon"}`)); err != nil {
			t.Fatal(err)
		}
		in := func(raw string) catalog.ConnectionInput {
			t.Helper()
			v, err := catalog.ParseConnectionInput([]byte(raw))
			if err != nil {
				t.Fatalf("ParseConnectionInput(%s): %v", raw, err)
			}
			return v
		}

		c1, created, err := s.CreateConnection(ctx, in(`{"connector_id":"amazon"}`))
		if err != nil || !created {
			t.Fatalf("create = %v, %v", created, err)
		}
		if want := specConnectionID("amazon", "account", "default"); c1.ConnectionID != want {
			t.Errorf("derived id = %s, want %s", c1.ConnectionID, want)
		}
		if c1.Status != "active" || c1.SourceKind != "account" || c1.SourceBindingKey != "default" || c1.DisplayName != "Amazon" || c1.RevokedAt != nil {
			t.Errorf("defaults not applied: %+v", c1)
		}
		again, created, err := s.CreateConnection(ctx, in(`{"connector_id":"amazon","display_name":"ignored"}`))
		if err != nil || created || again.ConnectionID != c1.ConnectionID || again.CreatedAt != c1.CreatedAt {
			t.Errorf("second create of the same source = %+v created %v, %v; want the existing row", again, created, err)
		}
		// The same client id for the same source is the same connection, not a conflict.
		same, created, err := s.CreateConnection(ctx, in(`{"connector_id":"amazon","connection_id":"`+c1.ConnectionID+`"}`))
		if err != nil || created || same.ConnectionID != c1.ConnectionID {
			t.Errorf("create with the existing id = %+v %v %v", same, created, err)
		}

		work, created, err := s.CreateConnection(ctx, in(`{"connector_id":"amazon","source_kind":"browser_collector","source_binding_key":"work","display_name":"Amazon — work","status":"draft"}`))
		if err != nil || !created {
			t.Fatal(created, err)
		}
		if want := specConnectionID("amazon", "browser_collector", "work"); work.ConnectionID != want || work.DisplayName != "Amazon — work" || work.Status != "draft" {
			t.Errorf("second connection = %+v, want id %s", work, want)
		}
		custom, created, err := s.CreateConnection(ctx, in(`{"connector_id":"amazon","source_binding_key":"k3","connection_id":"cin_custom_1","status":"revoked"}`))
		if err != nil || !created || custom.ConnectionID != "cin_custom_1" {
			t.Fatalf("client id create = %+v %v %v", custom, created, err)
		}
		if custom.RevokedAt == nil || !timeRE.MatchString(*custom.RevokedAt) {
			t.Errorf("created revoked without revoked_at: %+v", custom)
		}

		// Conflicts: a different client id for an existing source; an id used by another source.
		before := countRows(t, db, "connections")
		if _, _, err := s.CreateConnection(ctx, in(`{"connector_id":"amazon","connection_id":"cin_other"}`)); !errors.Is(err, catalog.ErrConflict) {
			t.Errorf("different id for an existing source: %v, want ErrConflict", err)
		}
		if _, _, err := s.CreateConnection(ctx, in(`{"connector_id":"amazon","source_binding_key":"k4","connection_id":"cin_custom_1"}`)); !errors.Is(err, catalog.ErrConflict) {
			t.Errorf("id of another source: %v, want ErrConflict", err)
		}
		if _, _, err := s.CreateConnection(ctx, in(`{"connector_id":"nope"}`)); !errors.Is(err, catalog.ErrNotFound) {
			t.Errorf("unknown connector: %v, want ErrNotFound", err)
		}
		if after := countRows(t, db, "connections"); after != before {
			t.Errorf("refused creates changed the row count %d → %d", before, after)
		}
	})
}

func TestPatchConnectionRevokedAt(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		s := catalog.NewStore(db, stepClock())
		if _, _, err := s.PutConnector(ctx, "amazon", mustManifest(t, `{"display_name":"Amazon"}`)); err != nil {
			t.Fatal(err)
		}
		c, _, err := s.CreateConnection(ctx, catalog.ConnectionInput{ConnectorID: "amazon", Status: "active", SourceKind: "account", SourceBindingKey: "default"})
		if err != nil {
			t.Fatal(err)
		}
		status := func(s string) catalog.ConnectionPatch { return catalog.ConnectionPatch{Status: &s} }

		revoked, err := s.PatchConnection(ctx, c.ConnectionID, status("revoked"))
		if err != nil || revoked.Status != "revoked" || revoked.RevokedAt == nil || !timeRE.MatchString(*revoked.RevokedAt) {
			t.Fatalf("revoke = %+v, %v", revoked, err)
		}
		if revoked.UpdatedAt == c.UpdatedAt {
			t.Error("updated_at unchanged by a patch")
		}
		// Staying revoked keeps the original revoked_at.
		name := "renamed"
		still, err := s.PatchConnection(ctx, c.ConnectionID, catalog.ConnectionPatch{DisplayName: &name, Status: &revoked.Status})
		if err != nil || still.RevokedAt == nil || *still.RevokedAt != *revoked.RevokedAt || still.DisplayName != "renamed" {
			t.Errorf("patch while revoked = %+v, %v; revoked_at must stay %s", still, err, *revoked.RevokedAt)
		}
		paused, err := s.PatchConnection(ctx, c.ConnectionID, status("paused"))
		if err != nil || paused.RevokedAt != nil || paused.Status != "paused" {
			t.Errorf("leaving revoked = %+v, %v; want revoked_at cleared", paused, err)
		}
		entry, err := s.Connection(ctx, c.ConnectionID)
		if err != nil || entry.Connection.RevokedAt != nil || entry.Connection.Status != "paused" || entry.Connection.DisplayName != "renamed" || entry.Connector.ConnectorID != "amazon" {
			t.Errorf("stored after patches = %+v, %v", entry, err)
		}
		if _, err := s.PatchConnection(ctx, "cin_nope", status("paused")); !errors.Is(err, catalog.ErrNotFound) {
			t.Errorf("patch unknown: %v, want ErrNotFound", err)
		}
	})
}

func TestVisibleOrderAndScopedResolution(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		s := catalog.NewStore(db, stepClock())
		for id, m := range map[string]string{
			"amazon": `{"display_name":"Amazon"}`,
			"chase":  `{"display_name":"Chase"}`,
			"hidden": `{"display_name":"Hidden","capabilities":{"public_listing":{"listed":false}}}`,
		} {
			if _, _, err := s.PutConnector(ctx, id, mustManifest(t, m)); err != nil {
				t.Fatal(err)
			}
		}
		mk := func(connector, key, status string) string {
			c, _, err := s.CreateConnection(ctx, catalog.ConnectionInput{ConnectorID: connector, Status: status, SourceKind: "account", SourceBindingKey: key})
			if err != nil {
				t.Fatal(err)
			}
			return c.ConnectionID
		}
		chase1 := mk("chase", "one", "active")
		amazonB := mk("amazon", "b", "paused")
		amazonA := mk("amazon", "a", "revoked")
		mk("amazon", "draft", "draft")
		mk("hidden", "h", "active")
		chaseDraft := mk("chase", "shell", "draft")

		all, err := s.Visible(ctx, catalog.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, e := range all {
			ids = append(ids, e.Connection.ConnectionID)
		}
		// connector_id ASC, created_at ASC: amazonB was created before amazonA.
		want := []string{amazonB, amazonA, chase1}
		if len(ids) != len(want) {
			t.Fatalf("visible = %v, want %v", ids, want)
		}
		for i := range want {
			if ids[i] != want[i] {
				t.Fatalf("visible = %v, want %v", ids, want)
			}
		}
		page, err := s.Visible(ctx, catalog.Filter{Limit: 1})
		if err != nil || len(page) != 2 {
			t.Fatalf("Limit 1 returns %d rows (want 2: one plus the look-ahead), %v", len(page), err)
		}
		k := catalog.KeyOf(page[0].Connection)
		rest, err := s.Visible(ctx, catalog.Filter{After: &k})
		if err != nil || len(rest) != 2 || rest[0].Connection.ConnectionID != amazonA {
			t.Errorf("after %v = %d rows, %v", k, len(rest), err)
		}
		only, err := s.Visible(ctx, catalog.Filter{ConnectorID: "chase"})
		if err != nil || len(only) != 1 || only[0].Connection.ConnectionID != chase1 {
			t.Errorf("chase only = %v, %v", only, err)
		}

		for _, c := range []struct{ id, want string }{
			{chase1, chase1},
			{"chase", chase1}, // a connector with exactly one visible connection
			{"amazon", ""},    // two visible connections: ambiguous
			{chaseDraft, ""},  // drafts are never visible
			{"hidden", ""},
			{"cin_nope", ""},
		} {
			e, err := s.ResolveScoped(ctx, c.id)
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if e != nil {
				got = e.Connection.ConnectionID
			}
			if got != c.want {
				t.Errorf("ResolveScoped(%s) = %q, want %q", c.id, got, c.want)
			}
		}
	})
}

func TestParseManifestValidation(t *testing.T) {
	cases := []struct{ raw, field string }{
		{`{"version":"1"}`, "display_name"},
		{`{"display_name":""}`, "display_name"},
		{`{"display_name":"   "}`, "display_name"},
		{`{"display_name":7}`, "display_name"},
		{`{"display_name":"A","version":1}`, "version"},
		{`{"display_name":"A","streams":{}}`, "streams"},
		{`{"display_name":"A","streams":[{"name":"a"},{}]}`, "streams[1].name"},
		{`{"display_name":"A","streams":[{"name":"a"},{"name":"a"}]}`, "streams[1].name"},
		{`{"display_name":"A","streams":["a"]}`, "streams[0]"},
		{`{"display_name":"A","capabilities":[]}`, "capabilities"},
		{`{"display_name":"A","capabilities":{"public_listing":{"listed":"no"}}}`, "capabilities.public_listing.listed"},
		{`{"display_name":"A","capabilities":{"refresh_policy":{"maximum_staleness_seconds":-1}}}`, "capabilities.refresh_policy.maximum_staleness_seconds"},
		{`{"display_name":"A","capabilities":{"browser_surface":{"profile_key":5}}}`, "capabilities.browser_surface.profile_key"},
		{`[]`, ""},
	}
	for _, c := range cases {
		_, err := catalog.ParseManifest([]byte(c.raw))
		e, ok := httpx.As(err)
		if !ok || e.Status != 400 || e.Field != c.field {
			t.Errorf("ParseManifest(%s) = %v, want 400 on %q", c.raw, err, c.field)
		}
	}
	m := mustManifest(t, `{"display_name":"A","capabilities":{"public_listing":{"listed":false},"browser_surface":{"profile_key":"  "}}}`)
	if m.Listed || m.ProfileKey != nil {
		t.Errorf("listed:false / blank profile key parsed as %+v", m)
	}
	if m := mustManifest(t, `{"display_name":"A"}`); !m.Listed {
		t.Error("listed does not default to true")
	}
}

func TestParseConnectionInputValidation(t *testing.T) {
	cases := []struct{ raw, field string }{
		{`{}`, "connector_id"},
		{`{"connector_id":"Amazon"}`, "connector_id"},
		{`{"connector_id":"amazon","status":"deleted"}`, "status"},
		{`{"connector_id":"amazon","source_kind":"cloud"}`, "source_kind"},
		{`{"connector_id":"amazon","connection_id":"abc"}`, "connection_id"},
		{`{"connector_id":"amazon","connection_id":"cin_a-b"}`, "connection_id"},
		{`{"connector_id":"amazon","source_binding_key":""}`, "source_binding_key"},
		{`{"connector_id":"amazon","display_name":3}`, "display_name"},
		{`{"connector_id":"amazon","colour":"red"}`, "colour"},
	}
	for _, c := range cases {
		_, err := catalog.ParseConnectionInput([]byte(c.raw))
		e, ok := httpx.As(err)
		if !ok || e.Status != 400 || e.Field != c.field {
			t.Errorf("ParseConnectionInput(%s) = %v, want 400 on %q", c.raw, err, c.field)
		}
	}
	for _, raw := range []string{`{}`, `{"status":"gone"}`, `{"display_name":""}`, `{"status":"paused","x":1}`} {
		if _, err := catalog.ParseConnectionPatch([]byte(raw)); err == nil {
			t.Errorf("ParseConnectionPatch(%s) accepted", raw)
		}
	}
	for _, id := range []string{"a", "amazon", "a.b-c_d", "0x"} {
		if !catalog.ValidConnectorID(id) {
			t.Errorf("ValidConnectorID(%q) = false", id)
		}
	}
	long := make([]byte, 129)
	for i := range long {
		long[i] = 'a'
	}
	for _, id := range []string{"", "-a", ".a", "A", "a b", "a/b", string(long)} {
		if catalog.ValidConnectorID(id) {
			t.Errorf("ValidConnectorID(%q) = true", id)
		}
	}
}
