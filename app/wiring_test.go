package app

import (
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"connsum/modules/bootstrap"
	"connsum/modules/catalog"
	"connsum/modules/runs"
)

// wiringConfig is a SQLite configuration with runs.evidence set to source.
func wiringConfig(t *testing.T, source runs.Source) *Config {
	t.Helper()
	cfg, err := LoadConfig("", false, noEnv, map[string]string{"db.url": "sqlite:" + t.TempDir() + "/x.db",
		"http.addr": "127.0.0.1:0", "runs.evidence": string(source)})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestEvidenceWiringIsChosenOnce: each runs.evidence value validates, and the one decision of the
// runs module gives the deep reads, the overview and the catalog's write hook consistent
// implementations: the read model everywhere, or the spine fold with a shallow overview and a
// hook that explicitly does nothing.
func TestEvidenceWiringIsChosenOnce(t *testing.T) {
	want := map[runs.Source]struct {
		deep, overview runs.EvidenceKind
		readModelHook  bool
	}{
		runs.SourceReadModel: {runs.EvidenceReadModel, runs.EvidenceReadModel, true},
		runs.SourceSpine:     {runs.EvidenceDeep, runs.EvidenceShallow, false},
	}
	for source, w := range want {
		t.Run(string(source), func(t *testing.T) {
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			tokens := Tokens{Owner: testOwnerToken}
			if err := fx.ValidateApp(Modules(wiringConfig(t, source), tokens, log)); err != nil {
				t.Fatalf("fx wiring: %v", err)
			}
			var hook catalog.WriteHook
			var deep, overview runs.Evidence
			app := fxtest.New(t, Modules(wiringConfig(t, source), tokens, log),
				fx.Invoke(fx.Annotate(func(h catalog.WriteHook, d, o runs.Evidence) { hook, deep, overview = h, d, o },
					fx.ParamTags(``, ``, `name:"overview"`))))
			app.RequireStart()
			defer app.RequireStop()
			if deep.Kind() != w.deep || overview.Kind() != w.overview {
				t.Errorf("deep reads %s, overview %s; want %s and %s", deep.Kind(), overview.Kind(), w.deep, w.overview)
			}
			if _, isReadModel := hook.(*runs.ReadModel); isReadModel != w.readModelHook {
				t.Errorf("catalog write hook %T, want the read model: %v", hook, w.readModelHook)
			}
		})
	}
}

// TestCatalogStoreRequiresAWriteHook: without the runs module the catalog store cannot be built,
// so a composition that drops it fails at start instead of silently no longer maintaining the
// read model.
func TestCatalogStoreRequiresAWriteHook(t *testing.T) {
	err := fx.ValidateApp(
		fx.Supply(bootstrap.Options{URL: "sqlite:" + t.TempDir() + "/x.db"}, bootstrap.Clock(time.Now)),
		bootstrap.Module, catalog.Module,
		fx.Invoke(func(*catalog.Store) {}),
		fx.NopLogger,
	)
	if err == nil || !strings.Contains(err.Error(), "catalog.WriteHook") {
		t.Errorf("catalog without a write hook: %v, want a missing catalog.WriteHook", err)
	}
}
