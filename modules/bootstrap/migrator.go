package bootstrap

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"
)

// migrations is the embedded migration set; files named NNNNNNNNNNNNNN_name.go register into it.
var migrations = migrate.NewMigrations()

// migrationLockKey is the PostgreSQL advisory lock that lets replicas starting together apply
// migrations once.
const migrationLockKey = 7780_0001

// IndexState reports one required index.
type IndexState struct {
	RequiredIndex
	Exists    bool `json:"exists"`
	Recreated bool `json:"recreated"`
}

// State is the bootstrap report served by GET /admin/bootstrap.
type State struct {
	Dialect       Dialect      `json:"dialect"`
	SchemaVersion string       `json:"schema_version"`
	Pending       []string     `json:"pending_migrations"`
	Indexes       []IndexState `json:"indexes"`
}

// Migrator applies migrations and verifies/repairs the required indexes.
type Migrator struct {
	db *bun.DB
}

// NewMigrator returns a Migrator for db.
func NewMigrator(db *bun.DB) *Migrator { return &Migrator{db: db} }

func (m *Migrator) bunMigrator() *migrate.Migrator {
	return migrate.NewMigrator(m.db, migrations, migrate.WithMarkAppliedOnSuccess(true))
}

// Migrate applies every pending migration (each marked applied only when it succeeded) and then
// verifies the required indexes, recreating any that are missing. Running it twice changes nothing.
func (m *Migrator) Migrate(ctx context.Context) (State, error) {
	unlock, err := m.lock(ctx)
	if err != nil {
		return State{}, err
	}
	defer unlock()
	bm := m.bunMigrator()
	if err := bm.Init(ctx); err != nil {
		return State{}, fmt.Errorf("bootstrap: init migrations: %w", err)
	}
	if _, err := bm.Migrate(ctx); err != nil {
		return State{}, fmt.Errorf("bootstrap: migrate: %w", err)
	}
	return m.verify(ctx, true)
}

// Inspect reports the state without changing anything.
func (m *Migrator) Inspect(ctx context.Context) (State, error) { return m.verify(ctx, false) }

func (m *Migrator) verify(ctx context.Context, repair bool) (State, error) {
	d := DialectOf(m.db)
	st := State{Dialect: d, Pending: []string{}}
	// A database that was never migrated has no bun_migrations table: every migration is
	// pending (reading the status would fail with "no such table").
	ms := migrations.Sorted()
	if ok, err := m.tableExists(ctx, "bun_migrations"); err != nil {
		return st, err
	} else if ok {
		if ms, err = m.bunMigrator().MigrationsWithStatus(ctx); err != nil {
			return st, fmt.Errorf("bootstrap: migration status: %w", err)
		}
	}
	for _, mg := range ms {
		if mg.IsApplied() {
			st.SchemaVersion = mg.Name + "_" + mg.Comment
		} else {
			st.Pending = append(st.Pending, mg.Name+"_"+mg.Comment)
		}
	}
	for _, ix := range RequiredIndexes() {
		ok, err := m.indexExists(ctx, ix.Name)
		if err != nil {
			return st, err
		}
		s := IndexState{RequiredIndex: ix, Exists: ok}
		if !ok && repair {
			if _, err := m.db.ExecContext(ctx, ix.create); err != nil {
				return st, fmt.Errorf("bootstrap: recreate index %s: %w", ix.Name, err)
			}
			s.Exists, s.Recreated = true, true
		}
		st.Indexes = append(st.Indexes, s)
	}
	return st, nil
}

func (m *Migrator) indexExists(ctx context.Context, name string) (bool, error) {
	q := "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = ?"
	if DialectOf(m.db) == Postgres {
		q = "SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() AND indexname = ?"
	}
	var n int
	if err := m.db.QueryRowContext(ctx, q, name).Scan(&n); err != nil {
		return false, fmt.Errorf("bootstrap: look up index %s: %w", name, err)
	}
	return n > 0, nil
}

func (m *Migrator) tableExists(ctx context.Context, name string) (bool, error) {
	q := "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?"
	if DialectOf(m.db) == Postgres {
		q = "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = ?"
	}
	var n int
	if err := m.db.QueryRowContext(ctx, q, name).Scan(&n); err != nil {
		return false, fmt.Errorf("bootstrap: look up table %s: %w", name, err)
	}
	return n > 0, nil
}

// lock takes the PostgreSQL advisory lock on a dedicated connection; SQLite needs none because
// its writers are serialised by the file lock.
func (m *Migrator) lock(ctx context.Context) (func(), error) {
	if DialectOf(m.db) != Postgres {
		return func() {}, nil
	}
	conn, err := m.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: lock connection: %w", err)
	}
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock(?)", migrationLockKey); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("bootstrap: advisory lock: %w", err)
	}
	return func() {
		_, _ = conn.ExecContext(context.Background(), "SELECT pg_advisory_unlock(?)", migrationLockKey)
		_ = conn.Close()
	}, nil
}

// OpenMigrated opens the database at dbURL with at most maxConns connections and applies the
// migrations: CLI commands (seed, rebuild) and benchmarks run outside the service, so they
// bootstrap the schema themselves.
func OpenMigrated(ctx context.Context, dbURL string, maxConns int) (*bun.DB, error) {
	db, err := Open(ctx, dbURL, PoolOptions{MaxOpenConns: maxConns})
	if err != nil {
		return nil, err
	}
	if _, err := NewMigrator(db).Migrate(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	return db, nil
}
