package catalog

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/schema"

	"connsum/modules/bootstrap"
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
	// QueueVisible and QueueResolveScoped queue the one statement of Visible and ResolveScoped
	// on b, so that a read sends it in the same round trip as its other statements; *out holds
	// the answer once b has run.
	QueueVisible(b *bootstrap.Batch, f Filter, out *[]Entry)
	QueueResolveScoped(b *bootstrap.Batch, id string, out **Entry)
	// IDs is the set of the connection ids of Visible(f)'s rows, in SQL (the package function
	// IDs on the reader's database).
	IDs(f Filter) IDSet
}

var _ Reader = (*Store)(nil)

// IDs implements Reader.
func (s *Store) IDs(f Filter) IDSet { return IDs(s.db, f) }

const entryColumns = `c.connection_id, c.connector_id, c.display_name, c.status, c.source_kind,
	c.source_binding_key, c.created_at, c.updated_at, c.revoked_at,
	k.display_name, k.version, k.listed, k.profile_key, k.manifest, k.created_at, k.updated_at`

// feedOrder is the feed order (SPEC §2.3), the order of Visible and of its keyset.
const feedOrder = "c.connector_id ASC, c.created_at ASC, c.connection_id ASC"

// scopedOrder is the order of ResolveScoped: the connection with the asked id first.
const scopedOrder = "CASE WHEN c.connection_id = ? THEN 0 ELSE 1 END, " + feedOrder

// onDerived turns an order over c into the same order over the derived table e.
func onDerived(order string) string { return strings.ReplaceAll(order, "c.", "e.") }

// onceColumns are the entry columns read from a list's rows (the derived table e of
// listEntries), the manifest only on the first row of each connector in the list's order (NULL
// on the rest): at 950 connections the manifests were 401 KB of the catalog statement's 845 KB,
// the same few dozen texts repeated on every row. The window runs over the rows the list
// returns (after its limit: SQLite evaluates a window before an outer LIMIT, 90 ms for a page of
// 100 at 10,000 connections when it ran over the whole table).
const onceColumns = `e.connection_id, e.connector_id, e.display_name, e.status, e.source_kind,
	e.source_binding_key, e.created_at, e.updated_at, e.revoked_at,
	e.k_display_name, e.k_version, e.k_listed, e.k_profile_key,
	CASE WHEN row_number() OVER (PARTITION BY e.connector_id ORDER BY %s) = 1 THEN e.k_manifest END,
	e.k_created_at, e.k_updated_at`

// innerColumns are the columns of the derived table e.
const innerColumns = `c.connection_id, c.connector_id, c.display_name, c.status, c.source_kind,
	c.source_binding_key, c.created_at, c.updated_at, c.revoked_at,
	k.display_name AS k_display_name, k.version AS k_version, k.listed AS k_listed, k.profile_key AS k_profile_key,
	k.manifest AS k_manifest, k.created_at AS k_created_at, k.updated_at AS k_updated_at`

// visibleWhere is the single definition of visibility (SPEC §2.3).
const visibleWhere = "k.listed = TRUE AND c.status <> 'draft'"

// fromConnections selects from connections c joined to their connectors k. On SQLite the join is
// a CROSS JOIN, which SQLite's planner never reorders (its documented manual control of join
// order): connections stay the outer loop, read in feed order from idx_connections_feed_order
// with each connector probed by its key, so a page of the feed costs O(page). With the plain join
// SQLite put connectors outside, searched each one's connections and sorted all of them in a
// temporary b-tree before the limit (at 10,000 connections 4-5 ms, in each of a page's four
// statements: the catalog's and the id set of the retained rows and the run heads). PostgreSQL
// has no CROSS JOIN … ON and plans the plain join as a merge join over the same index.
func fromConnections(q *bun.SelectQuery) *bun.SelectQuery {
	join := "JOIN connectors AS k ON k.connector_id = c.connector_id"
	if bootstrap.DialectOf(q.DB()) == bootstrap.SQLite {
		join = "CROSS " + join
	}
	return q.TableExpr("connections AS c").Join(join)
}

// IDs is the set of the connection ids of the rows Visible returns for f (Limit+1 of them with
// a limit), in SQL: reads of something per row of a list (retained rows, run heads) say it
// instead of listing every id, so their SQL text does not grow with the number of connections.
func IDs(db bun.IDB, f Filter) IDSet {
	q := f.apply(fromConnections(db.NewSelect().Column("c.connection_id")))
	if f.Limit > 0 {
		q = q.OrderExpr(feedOrder)
	}
	return IDSet{q: q, postgres: bootstrap.DialectOf(db) == bootstrap.Postgres}
}

// IDSet renders as the right-hand side of a membership test, Where("x.connection_id ?", set).
// On PostgreSQL it is `= ANY (ARRAY(subquery))`: the subquery runs once and the column's index is
// probed per id, where `IN (subquery)` is planned as a hash semi join over the whole table
// (a page of 100 at 10,000 connections: 1.3-3 ms per read, growing with N). SQLite probes the
// index for `IN (subquery)` already.
type IDSet struct {
	q        *bun.SelectQuery
	postgres bool
}

// AppendQuery implements schema.QueryAppender.
func (s IDSet) AppendQuery(gen schema.QueryGen, b []byte) ([]byte, error) {
	open, end := "IN (", ")"
	if s.postgres {
		open, end = "= ANY (ARRAY(", "))"
	}
	b = append(b, open...)
	b, err := s.q.AppendQuery(gen, b)
	if err != nil {
		return nil, err
	}
	return append(b, end...), nil
}

// Everything reports whether f selects every visible connection (no filter, no page), where a
// read of something per row may read it for all connections instead of saying the filter.
func (f Filter) Everything() bool {
	return f.ConnectorID == "" && f.After == nil && f.Limit == 0 && len(f.ChangedConnectors) == 0 && len(f.ChangedConnections) == 0
}

// apply adds the filter's conditions and limit to a select over connections c and connectors k.
func (f Filter) apply(q *bun.SelectQuery) *bun.SelectQuery {
	q = q.Where(visibleWhere)
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
	if f.Limit > 0 {
		q = q.Limit(int64(f.Limit + 1))
	}
	return q
}

// Visible implements Reader.
func (s *Store) Visible(ctx context.Context, f Filter) ([]Entry, error) {
	var b bootstrap.Batch
	var out []Entry
	s.QueueVisible(&b, f, &out)
	if err := b.Run(ctx); err != nil {
		return nil, fmt.Errorf("catalog: visible connections: %w", err)
	}
	return out, nil
}

// QueueVisible implements Reader.
func (s *Store) QueueVisible(b *bootstrap.Batch, f Filter, out *[]Entry) {
	s.queueList(b, f.apply(s.db.NewSelect()), func(entries []Entry) { *out = entries }, feedOrder)
}

// ResolveScoped implements Reader.
func (s *Store) ResolveScoped(ctx context.Context, id string) (*Entry, error) {
	var b bootstrap.Batch
	var out *Entry
	s.QueueResolveScoped(&b, id, &out)
	if err := b.Run(ctx); err != nil {
		return nil, fmt.Errorf("catalog: resolve %s: %w", id, err)
	}
	return out, nil
}

// QueueResolveScoped implements Reader, in one statement. The visible connection with that id
// sorts first, ahead of the connector's visible connections, so no number of connections of a
// connector whose id equals the asked id can push it out of the rows read (SPEC §2.3: the
// connector-id fallback applies only when the id is no visible connection). Without it, two rows
// tell "the connector's only connection" from "ambiguous".
func (s *Store) QueueResolveScoped(b *bootstrap.Batch, id string, out **Entry) {
	s.queueList(b, s.db.NewSelect().Where(visibleWhere).Where("(c.connection_id = ? OR c.connector_id = ?)", id, id).Limit(2),
		func(entries []Entry) {
			if len(entries) == 1 || (len(entries) > 0 && entries[0].Connection.ConnectionID == id) {
				*out = &entries[0]
			}
		}, scopedOrder, id)
}

// entries runs q (a select whose FROM/columns are filled in here) and builds entries, sharing
// one *Connector per connector id.
func (s *Store) entries(ctx context.Context, q *bun.SelectQuery) ([]Entry, error) {
	var b bootstrap.Batch
	var out []Entry
	b.Queue(s.db, fromConnections(q.ColumnExpr(entryColumns)), func(rows bootstrap.Rows) (err error) {
		out, err = scanEntries(rows)
		return err
	})
	return out, b.Run(ctx)
}

// queueList queues a list's statement on b: q (conditions and limit over c and k) ordered by
// order (with args), each connector's manifest on its first row only (onceColumns); then
// receives its entries.
func (s *Store) queueList(b *bootstrap.Batch, q *bun.SelectQuery, then func([]Entry), order string, args ...any) {
	inner := fromConnections(q.ColumnExpr(innerColumns)).OrderExpr(order, args...)
	outer := onDerived(order)
	b.Queue(s.db, s.db.NewSelect().ColumnExpr(strings.Replace(onceColumns, "%s", outer, 1), args...).
		TableExpr("(?) AS e", inner).OrderExpr(outer, args...), func(rows bootstrap.Rows) error {
		entries, err := scanEntries(rows)
		if err == nil {
			then(entries)
		}
		return err
	})
}

// scanEntries builds the entries of rows whose columns are those of entryColumns. The rows are
// scanned without reflection (the drivers' fast paths for *string, *bool and sql.NullString); a
// connector's manifest is read from the first of its rows.
func scanEntries(rows bootstrap.Rows) ([]Entry, error) {
	connectors := map[string]*Connector{}
	var out []Entry
	var revokedAt, version, profileKey, raw sql.NullString
	// Every row carries its connector's columns, scanned here; a Connector is made for the
	// first row of each connector only (a page of 100 rows has a few).
	var scanned Connector
	for rows.Next() {
		c := new(Connection)
		if err := rows.Scan(&c.ConnectionID, &c.ConnectorID, &c.DisplayName, &c.Status, &c.SourceKind,
			&c.SourceBindingKey, &c.CreatedAt, &c.UpdatedAt, &revokedAt,
			&scanned.DisplayName, &version, &scanned.Listed, &profileKey, &raw, &scanned.CreatedAt, &scanned.UpdatedAt); err != nil {
			return nil, err
		}
		c.RevokedAt = bootstrap.StringOrNil(revokedAt)
		k, shared := connectors[c.ConnectorID]
		if !shared {
			if !raw.Valid {
				return nil, fmt.Errorf("connector %s: first row without its manifest", c.ConnectorID)
			}
			k = new(Connector)
			*k = scanned
			k.ConnectorID, k.Version, k.ProfileKey = c.ConnectorID, bootstrap.StringOrNil(version), bootstrap.StringOrNil(profileKey)
			k.Manifest = []byte(raw.String)
			k.DecodeManifest() // once here, so concurrent readers of the entry only read
			connectors[c.ConnectorID] = k
		}
		out = append(out, Entry{Connection: c, Connector: k})
	}
	return out, rows.Err()
}
