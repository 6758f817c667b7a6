package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"connsum/modules/bootstrap"
	"connsum/modules/revision"
)

// Store reads and writes connectors and connections.
type Store struct {
	db   bun.IDB
	now  bootstrap.Clock
	hook WriteHook
}

// WithHook returns the store with a write hook (nil for none).
func (s *Store) WithHook(h WriteHook) *Store {
	c := *s
	c.hook = h
	return &c
}

// NewStore returns a Store over db.
func NewStore(db bun.IDB, now bootstrap.Clock) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{db: db, now: now}
}

// PutConnector creates or replaces a connector; created reports which.
func (s *Store) PutConnector(ctx context.Context, id string, m Manifest) (c *Connector, created bool, err error) {
	put := func(ctx context.Context, tx bun.Tx) error {
		created = false
		now := bootstrap.FormatTime(s.now())
		c = &Connector{ConnectorID: id, DisplayName: m.DisplayName, Version: m.Version, Listed: m.Listed,
			ProfileKey: m.ProfileKey, Manifest: m.Raw, CreatedAt: now, UpdatedAt: now}
		c.DecodeManifest()
		var existing Connector
		switch err := tx.NewSelect().Model(&existing).Where("connector_id = ?", id).Scan(ctx); {
		case errors.Is(err, sql.ErrNoRows):
			created = true
			if _, err := tx.NewInsert().Model(c).Exec(ctx); err != nil {
				return err
			}
		case err != nil:
			return err
		default:
			c.CreatedAt = existing.CreatedAt
			if _, err := tx.NewUpdate().Model(c).WherePK().Exec(ctx); err != nil {
				return err
			}
			if s.hook != nil && deref(existing.ProfileKey) != deref(c.ProfileKey) {
				if err := s.hook.ProfileKeyChanged(ctx, tx, id); err != nil {
					return err
				}
			}
		}
		// Its connections by id too: an unlisted connector's connections leave the feed, and a
		// client resuming the change stream learns of a removal only by its connection id.
		var ids []string
		if err := tx.NewSelect().Table("connections").Column("connection_id").Where("connector_id = ?", id).Scan(ctx, &ids); err != nil {
			return err
		}
		return s.advance(ctx, tx, revision.Change{ConnectorIDs: []string{id}, ConnectionIDs: ids})
	}
	// Serialized with ingest and connection creates: a profile-key change re-attributes the
	// connector's runs, which must not interleave with an append attributing new runs by the old
	// key. Two first PUTs of one id then also see each other (the second replaces).
	if err = bootstrap.RunSerialized(ctx, s.db, put); err != nil {
		return nil, false, fmt.Errorf("catalog: put connector %s: %w", id, err)
	}
	return c, created, nil
}

// Connector returns one connector.
func (s *Store) Connector(ctx context.Context, id string) (*Connector, error) {
	var c Connector
	if err := s.db.NewSelect().Model(&c).Where("connector_id = ?", id).Scan(ctx); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("catalog: connector %s: %w", id, err)
	}
	return &c, nil
}

// Connection returns one connection with its connector.
func (s *Store) Connection(ctx context.Context, id string) (*Entry, error) {
	entries, err := s.entries(ctx, s.db.NewSelect().Where("c.connection_id = ?", id))
	if err != nil {
		return nil, fmt.Errorf("catalog: connection %s: %w", id, err)
	}
	if len(entries) == 0 {
		return nil, ErrNotFound
	}
	return &entries[0], nil
}

// CreateConnection creates a connection, or returns the existing one for the same (connector,
// source kind, binding key) with created=false. A client-given id already used by a different
// (connector, kind, key) is a conflict.
func (s *Store) CreateConnection(ctx context.Context, in ConnectionInput) (conn *Connection, created bool, err error) {
	create := func(ctx context.Context, tx bun.Tx) error {
		conn, created = nil, false
		connector := new(Connector)
		if err := tx.NewSelect().Model(connector).Where("connector_id = ?", in.ConnectorID).Scan(ctx); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return ErrNotFound
			}
			return err
		}
		existing := new(Connection)
		err := tx.NewSelect().Model(existing).
			Where("connector_id = ? AND source_kind = ? AND source_binding_key = ?", in.ConnectorID, in.SourceKind, in.SourceBindingKey).
			Scan(ctx)
		if err == nil {
			if in.ConnectionID != "" && in.ConnectionID != existing.ConnectionID {
				return fmt.Errorf("%w: this connector, source kind and binding key already belong to %s", ErrConflict, existing.ConnectionID)
			}
			conn = existing
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		id := in.ConnectionID
		if id == "" {
			id = DerivedConnectionID(in.ConnectorID, in.SourceKind, in.SourceBindingKey)
		}
		byID := new(Connection)
		switch err := tx.NewSelect().Model(byID).Where("connection_id = ?", id).Scan(ctx); {
		case err == nil && byID.ConnectorID == in.ConnectorID && byID.SourceKind == in.SourceKind && byID.SourceBindingKey == in.SourceBindingKey:
			// The same source, committed by a concurrent create since the lookup above.
			conn = byID
			return nil
		case err == nil:
			return fmt.Errorf("%w: connection id %s is already used by another source", ErrConflict, id)
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		now := bootstrap.FormatTime(s.now())
		conn = &Connection{ConnectionID: id, ConnectorID: in.ConnectorID, DisplayName: connector.DisplayName,
			Status: in.Status, SourceKind: in.SourceKind, SourceBindingKey: in.SourceBindingKey, CreatedAt: now, UpdatedAt: now}
		if in.DisplayName != nil {
			conn.DisplayName = *in.DisplayName
		}
		if in.Status == StatusRevoked {
			conn.RevokedAt = &now
		}
		created = true
		if _, err := tx.NewInsert().Model(conn).Exec(ctx); err != nil {
			return err
		}
		if s.hook != nil {
			if err := s.hook.ConnectionCreated(ctx, tx, conn, connector); err != nil {
				return err
			}
		}
		return s.advance(ctx, tx, revision.Change{ConnectionIDs: []string{id}})
	}
	// Serialized with ingest: the create attributes the runs already stored for the new
	// connection, and an append running at the same time must see the connection or have its runs
	// seen by the create — never neither. Two creates of one source then also see each other.
	if err = bootstrap.RunSerialized(ctx, s.db, create); err != nil {
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) {
			return nil, false, err
		}
		return nil, false, fmt.Errorf("catalog: create connection: %w", err)
	}
	return conn, created, nil
}

// PatchConnection changes a connection's display name and/or status. revoked_at is set when
// the status becomes revoked and cleared when it leaves revoked.
func (s *Store) PatchConnection(ctx context.Context, id string, p ConnectionPatch) (*Connection, error) {
	conn := new(Connection)
	// A read-modify-write of one row: the row lock makes concurrent PATCHes apply one after the
	// other instead of the later one writing back the status the earlier one replaced.
	err := bootstrap.RunInTx(ctx, s.db, func(ctx context.Context, tx bun.Tx) error {
		if err := bootstrap.LockRows(tx.NewSelect().Model(conn).Where("connection_id = ?", id)).Scan(ctx); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return ErrNotFound
			}
			return err
		}
		now := bootstrap.FormatTime(s.now())
		if p.DisplayName != nil {
			conn.DisplayName = *p.DisplayName
		}
		if p.Status != nil && *p.Status != conn.Status {
			switch {
			case *p.Status == StatusRevoked:
				conn.RevokedAt = &now
			case conn.Status == StatusRevoked:
				conn.RevokedAt = nil
			}
			conn.Status = *p.Status
		}
		conn.UpdatedAt = now
		if _, err := tx.NewUpdate().Model(conn).WherePK().Exec(ctx); err != nil {
			return err
		}
		return s.advance(ctx, tx, revision.Change{ConnectionIDs: []string{id}})
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, err
		}
		return nil, fmt.Errorf("catalog: patch connection %s: %w", id, err)
	}
	return conn, nil
}

// advance advances the feed revision for ch: the last statement of every catalog write
// (revision.Advance).
func (s *Store) advance(ctx context.Context, tx bun.Tx, ch revision.Change) error {
	_, err := revision.Advance(ctx, tx, ch, s.now())
	return err
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
