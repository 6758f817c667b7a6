package bootstrap_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/uptrace/bun"
	"go.uber.org/fx/fxtest"

	"connsum/modules/bootstrap"
	"connsum/modules/bootstrap/dbtest"
	"connsum/modules/httpx"
	"connsum/modules/httpx/httpxtest"
)

func TestRouteAccessClasses(t *testing.T) {
	want := map[string]httpx.Access{"/admin/bootstrap": httpx.Admin}
	got := map[string]httpx.Access{}
	for _, r := range bootstrap.NewRoutes(nil).Routes() {
		got[r.Path] = r.Access
	}
	for path, a := range want {
		if g, ok := got[path]; !ok || g != a {
			t.Errorf("%s access = %v (present %v), want %v", path, g, ok, a)
		}
	}
}

// TestReadyFollowsBootstrap: Ready is done only once its start hook migrated, and
// /admin/bootstrap then reports the schema version and every required index. (/readyz, which
// reads Ready, is tested in package health.)
func TestReadyFollowsBootstrap(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		m := bootstrap.NewMigrator(db)
		lc := fxtest.NewLifecycle(t)
		ready := bootstrap.NewReady(lc, m, bootstrap.Options{AutoMigrate: true})
		if ready.Done() {
			t.Fatal("Ready is done before its start hook ran")
		}
		lc.RequireStart()
		defer lc.RequireStop()
		if !ready.Done() {
			t.Fatal("Ready is not done after start")
		}
		app := httpxtest.App(bootstrap.NewRoutes(m))
		status, body := httpxtest.GetJSON(t, app, "/admin/bootstrap")
		if status != fiber.StatusOK {
			t.Fatalf("/admin/bootstrap = %d %v", status, body)
		}
		idx, _ := body["indexes"].([]any)
		if body["schema_version"] == "" || len(idx) != len(bootstrap.RequiredIndexes()) {
			t.Errorf("/admin/bootstrap = %v; want the schema version and every required index", body)
		}
		for _, raw := range idx {
			ix, _ := raw.(map[string]any)
			if ix["exists"] != true || ix["name"] == "" {
				t.Errorf("/admin/bootstrap index %v does not exist", ix)
			}
		}
	})
}

func TestReadyWithoutAutoMigrateRefusesABehindSchema(t *testing.T) {
	ctx := context.Background()
	db, err := bootstrap.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "behind.db"), bootstrap.PoolOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	lc := fxtest.NewLifecycle(t)
	ready := bootstrap.NewReady(lc, bootstrap.NewMigrator(db), bootstrap.Options{AutoMigrate: false})
	err = lc.Start(ctx)
	if err == nil {
		_ = lc.Stop(ctx)
		t.Fatal("start succeeded on an unmigrated database with db.auto_migrate=false")
	}
	if !strings.Contains(err.Error(), "connsum migrate") {
		t.Errorf("start error %q does not tell the operator to run `connsum migrate`", err)
	}
	if ready.Done() {
		t.Error("Ready reports done after a failed bootstrap")
	}
}

func TestReadyWithoutAutoMigrateRepairsIndexes(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		if _, err := db.ExecContext(ctx, "DROP INDEX "+runSummaryIndex); err != nil {
			t.Fatal(err)
		}
		m := bootstrap.NewMigrator(db)
		lc := fxtest.NewLifecycle(t)
		ready := bootstrap.NewReady(lc, m, bootstrap.Options{AutoMigrate: false})
		lc.RequireStart()
		defer lc.RequireStop()
		if !ready.Done() {
			t.Fatal("not ready")
		}
		st, err := m.Inspect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !indexState(t, st, runSummaryIndex).Exists {
			t.Error("start with db.auto_migrate=false did not recreate the missing required index")
		}
	})
}
