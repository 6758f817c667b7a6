package bootstrap_test

import (
	"context"
	"testing"

	"github.com/uptrace/bun"

	"connsum/modules/bootstrap"
	"connsum/modules/bootstrap/dbtest"
)

// indexShape is an index's definition as the engine reports it, with the collation of each key
// column (a definition alone does not show a collation inherited from the column).
func indexShape(t *testing.T, db *bun.DB, name string) string {
	t.Helper()
	q := `SELECT m.sql || ' collations ' || (SELECT group_concat(coalesce(x.coll, '-'), ',') FROM pragma_index_xinfo(m.name) x WHERE x.key = 1)
		FROM sqlite_master m WHERE m.type = 'index' AND m.name = ?`
	if bootstrap.DialectOf(db) == bootstrap.Postgres {
		q = `SELECT pg_get_indexdef(i.indexrelid) || ' collations ' || coalesce((SELECT string_agg(coalesce(co.collname, '-'), ',' ORDER BY k.n)
			FROM unnest(i.indcollation::oid[]) WITH ORDINALITY AS k(coll, n) LEFT JOIN pg_collation co ON co.oid = k.coll), '')
			FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace ns ON ns.oid = c.relnamespace
			WHERE ns.nspname = current_schema() AND c.relname = ?`
	}
	var def string
	if err := db.QueryRowContext(context.Background(), q, name).Scan(&def); err != nil {
		t.Fatalf("index %s: %v", name, err)
	}
	return def
}

// TestRequiredIndexesAreWhatTheMigrationsLeave: the verify/repair list holds each index as the
// latest migration leaves it, so a repaired index is the same index, collations included, as on
// a database that never lost it.
func TestRequiredIndexesAreWhatTheMigrationsLeave(t *testing.T) {
	dbtest.OrderingEngines(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		for _, ix := range bootstrap.RequiredIndexes() {
			migrated := indexShape(t, db, ix.Name)
			if _, err := db.ExecContext(ctx, "DROP INDEX "+ix.Name); err != nil {
				t.Fatalf("drop %s: %v", ix.Name, err)
			}
			st, err := bootstrap.NewMigrator(db).Migrate(ctx)
			if err != nil {
				t.Fatalf("Migrate: %v", err)
			}
			if !indexState(t, st, ix.Name).Recreated {
				t.Errorf("%s was not recreated", ix.Name)
			}
			if repaired := indexShape(t, db, ix.Name); repaired != migrated {
				t.Errorf("repaired %s differs from the migrated one:\nmigrated %s\nrepaired %s", ix.Name, migrated, repaired)
			}
		}
	})
}

// TestTextComparesBytesOnEveryDatabase: every text column and every index key compares bytes —
// COLLATE "C" on PostgreSQL whatever the database's default collation, BINARY on SQLite — so
// ORDER BY, keyset comparisons and the run_id DESC tie-break give one answer on every database
// (SPEC §4.1). A later migration that adds a text column must give it COLLATE "C" too.
func TestTextComparesBytesOnEveryDatabase(t *testing.T) {
	dbtest.OrderingEngines(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		var wrong []string
		if bootstrap.DialectOf(db) == bootstrap.Postgres {
			if t.Name() == "TestTextComparesBytesOnEveryDatabase/postgres_icu" {
				var linguistic bool
				if err := db.QueryRowContext(ctx, "SELECT 'a_b' < 'a-b'").Scan(&linguistic); err != nil || !linguistic {
					t.Fatalf("the ICU database compares literals by bytes (%v): the test would prove nothing", err)
				}
			}
			if err := db.NewRaw(`SELECT table_name || '.' || column_name || ' ' || coalesce(collation_name, '(default)')
				FROM information_schema.columns
				WHERE table_schema = current_schema() AND data_type = 'text' AND table_name NOT LIKE 'bun\_%'
					AND collation_name IS DISTINCT FROM 'C'
				ORDER BY 1`).Scan(ctx, &wrong); err != nil {
				t.Fatal(err)
			}
			var keys []string
			if err := db.NewRaw(`SELECT c.relname || ' key ' || k.n || ' ' || coalesce(co.collname, '(none)')
				FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace ns ON ns.oid = c.relnamespace
				CROSS JOIN LATERAL unnest(i.indcollation::oid[]) WITH ORDINALITY AS k(coll, n)
				LEFT JOIN pg_collation co ON co.oid = k.coll
				WHERE ns.nspname = current_schema() AND c.relname NOT LIKE 'bun\_%' AND k.coll <> 0 AND co.collname IS DISTINCT FROM 'C'
				ORDER BY 1`).Scan(ctx, &keys); err != nil {
				t.Fatal(err)
			}
			wrong = append(wrong, keys...)
		} else if err := db.NewRaw(`SELECT m.name || ' key ' || x.seqno || ' ' || coalesce(x.coll, '(none)')
			FROM sqlite_master m, pragma_index_xinfo(m.name) x
			WHERE m.type = 'index' AND x.key = 1 AND x.cid >= 0 AND x.coll IS NOT 'BINARY'
			UNION ALL SELECT m.name || ' declares a collation' FROM sqlite_master m WHERE m.sql LIKE '%COLLATE%'
			ORDER BY 1`).Scan(ctx, &wrong); err != nil {
			t.Fatal(err)
		}
		for _, w := range wrong {
			t.Errorf("does not compare bytes: %s", w)
		}
	})
}
