package catalog

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
)

// Key is a position in the feed order (connector_id, created_at, connection_id).
type Key struct {
	ConnectorID  string `json:"k"`
	CreatedAt    string `json:"t"`
	ConnectionID string `json:"c"`
}

// KeyOf returns the feed-order key of a connection.
func KeyOf(c *Connection) Key { return Key{c.ConnectorID, c.CreatedAt, c.ConnectionID} }

// Filter selects visible connections for the overview.
type Filter struct {
	ConnectorID string // "" for all connectors
	After       *Key   // keyset cursor: rows strictly after this key
	Limit       int    // 0 for all rows
	// Changed, when either list is set, keeps only the connections of these connectors and
	// these connections (the change stream's re-projection of what a write may have changed).
	ChangedConnectors, ChangedConnections []string
}

// Reader is the catalog port the feed reads through.
type Reader interface {
	// Visible returns the visible connections (listed connector, status not draft) in feed
	// order, in one statement. With a Limit it returns up to Limit+1 rows so the caller can tell
	// whether there is more.
	Visible(ctx context.Context, f Filter) ([]Entry, error)
	// Connection returns one connection (any status) with its connector.
	Connection(ctx context.Context, id string) (*Entry, error)
	// ResolveScoped finds the connection a scoped read names: a visible connection with that id,
	// else the only visible connection of a connector with that id; nil when neither.
	ResolveScoped(ctx context.Context, id string) (*Entry, error)
}

var _ Reader = (*Store)(nil)

const entryColumns = `c.connection_id, c.connector_id, c.display_name, c.status, c.source_kind,
	c.source_binding_key, c.created_at, c.updated_at, c.revoked_at,
	k.display_name, k.version, k.listed, k.profile_key, k.manifest, k.created_at, k.updated_at`

// visibleWhere is the single definition of visibility (SPEC §2.3).
const visibleWhere = "k.listed = TRUE AND c.status <> 'draft'"

// Visible implements Reader.
func (s *Store) Visible(ctx context.Context, f Filter) ([]Entry, error) {
	q := s.db.NewSelect().Where(visibleWhere)
	if f.ConnectorID != "" {
		q = q.Where("c.connector_id = ?", f.ConnectorID)
	}
	if f.After != nil {
		q = q.Where("(c.connector_id, c.created_at, c.connection_id) > (?, ?, ?)", f.After.ConnectorID, f.After.CreatedAt, f.After.ConnectionID)
	}
	if len(f.ChangedConnectors) > 0 || len(f.ChangedConnections) > 0 {
		q = q.WhereGroup(" AND ", func(q *bun.SelectQuery) *bun.SelectQuery {
			if len(f.ChangedConnectors) > 0 {
				q = q.WhereOr("c.connector_id IN (?)", bun.In(f.ChangedConnectors))
			}
			if len(f.ChangedConnections) > 0 {
				q = q.WhereOr("c.connection_id IN (?)", bun.In(f.ChangedConnections))
			}
			return q
		})
	}
	q = q.OrderExpr("c.connector_id ASC, c.created_at ASC, c.connection_id ASC")
	if f.Limit > 0 {
		q = q.Limit(int64(f.Limit + 1))
	}
	entries, err := s.entries(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("catalog: visible connections: %w", err)
	}
	return entries, nil
}

// ResolveScoped implements Reader, in one statement. The visible connection with that id sorts
// first, ahead of the connector's visible connections, so no number of connections of a connector
// whose id equals the asked id can push it out of the rows read (SPEC §2.3: the connector-id
// fallback applies only when the id is no visible connection). Without it, two rows tell "the
// connector's only connection" from "ambiguous".
func (s *Store) ResolveScoped(ctx context.Context, id string) (*Entry, error) {
	entries, err := s.entries(ctx, s.db.NewSelect().Where(visibleWhere).
		Where("(c.connection_id = ? OR c.connector_id = ?)", id, id).
		OrderExpr("CASE WHEN c.connection_id = ? THEN 0 ELSE 1 END, c.connector_id ASC, c.created_at ASC, c.connection_id ASC", id).
		Limit(2))
	if err != nil {
		return nil, fmt.Errorf("catalog: resolve %s: %w", id, err)
	}
	if len(entries) == 1 || (len(entries) > 0 && entries[0].Connection.ConnectionID == id) {
		return &entries[0], nil
	}
	return nil, nil
}

// entries runs q (a select whose FROM/columns are filled in here) and builds entries, sharing
// one *Connector per connector id.
func (s *Store) entries(ctx context.Context, q *bun.SelectQuery) ([]Entry, error) {
	q = q.ColumnExpr(entryColumns).TableExpr("connections AS c").Join("JOIN connectors AS k ON k.connector_id = c.connector_id")
	rows, err := q.Rows(ctx)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	connectors := map[string]*Connector{}
	var out []Entry
	for rows.Next() {
		c := new(Connection)
		k := new(Connector)
		var manifest string
		if err := rows.Scan(&c.ConnectionID, &c.ConnectorID, &c.DisplayName, &c.Status, &c.SourceKind,
			&c.SourceBindingKey, &c.CreatedAt, &c.UpdatedAt, &c.RevokedAt,
			&k.DisplayName, &k.Version, &k.Listed, &k.ProfileKey, &manifest, &k.CreatedAt, &k.UpdatedAt); err != nil {
			return nil, err
		}
		if shared, ok := connectors[c.ConnectorID]; ok {
			k = shared
		} else {
			k.ConnectorID = c.ConnectorID
			k.Manifest = []byte(manifest)
			k.DecodeManifest() // once here, so concurrent readers of the entry only read
			connectors[c.ConnectorID] = k
		}
		out = append(out, Entry{Connection: c, Connector: k})
	}
	return out, rows.Err()
}
