// Package catalog stores connectors (with their manifests) and connections, computes a
// connection's expected browser profile key, and answers which connections are visible.
package catalog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"

	"connsum/modules/jsonx"
)

// Sentinel errors of the catalog.
var (
	ErrNotFound = errors.New("catalog: not found")
	ErrConflict = errors.New("catalog: conflict")
)

// Connection statuses and source kinds (SPEC §1.2).
const (
	StatusActive  = "active"
	StatusPaused  = "paused"
	StatusRevoked = "revoked"
	StatusDraft   = "draft"
)

// Connector is a stored connector with the manifest fields the feed needs parsed out.
type Connector struct {
	ConnectorID string          `bun:"connector_id,pk" json:"connector_id"`
	DisplayName string          `bun:"display_name" json:"display_name"`
	Version     *string         `bun:"version" json:"version"`
	Listed      bool            `bun:"listed" json:"listed"`
	ProfileKey  *string         `bun:"profile_key" json:"-"`
	Manifest    json.RawMessage `bun:"manifest,type:text" json:"manifest"`
	CreatedAt   string          `bun:"created_at" json:"created_at"`
	UpdatedAt   string          `bun:"updated_at" json:"updated_at"`

	streams       []string
	refreshPolicy json.RawMessage
	maxStaleness  int64
}

// Streams returns the manifest's stream names in manifest order. Like the other getters it
// only reads: the fields are filled when the connector is scanned or built (DecodeManifest), so
// one *Connector can be shared by concurrent readers.
func (c *Connector) Streams() []string { return c.streams }

// RefreshPolicy returns capabilities.refresh_policy as raw JSON, or nil.
func (c *Connector) RefreshPolicy() json.RawMessage { return c.refreshPolicy }

// MaxStalenessSeconds returns refresh_policy.maximum_staleness_seconds, or 0 when absent.
func (c *Connector) MaxStalenessSeconds() int64 { return c.maxStaleness }

// AfterScanRow implements bun's AfterScanRowHook: every connector bun scans has its manifest
// fields decoded before anyone reads it.
func (c *Connector) AfterScanRow(context.Context) error {
	c.DecodeManifest()
	return nil
}

// DecodeManifest fills the fields the getters return from Manifest. The store calls it on every
// connector it builds; code that builds a Connector by hand calls it once, before sharing it.
func (c *Connector) DecodeManifest() {
	c.refreshPolicy, c.maxStaleness = nil, 0
	// Keys are matched exactly, as ParseManifest matches them (encoding/json's struct decoding
	// would also take "Streams" or "CAPABILITIES"). The manifest was validated when stored.
	c.streams = []string{}
	o, err := jsonx.ParseStoredObject(c.Manifest)
	if err != nil {
		return
	}
	if streams, _, _ := o.Array("streams"); streams != nil {
		for _, raw := range streams {
			if so, err := jsonx.ParseStoredObject(raw); err == nil {
				if name, ok, _ := so.String("name"); ok {
					c.streams = append(c.streams, name)
				}
			}
		}
	}
	if caps, ok, _ := o.Object("capabilities"); ok {
		if rp, ok := caps.Raw("refresh_policy"); ok {
			if rpo, err := jsonx.ParseStoredObject(rp); err == nil {
				c.refreshPolicy = rp
				if n, ok, _ := rpo.NonNegativeInt("maximum_staleness_seconds", false); ok {
					c.maxStaleness = n
				}
			}
		}
	}
}

// Connection is one account or device of a connector.
type Connection struct {
	ConnectionID     string  `bun:"connection_id,pk" json:"connection_id"`
	ConnectorID      string  `bun:"connector_id" json:"connector_id"`
	DisplayName      string  `bun:"display_name" json:"display_name"`
	Status           string  `bun:"status" json:"status"`
	SourceKind       string  `bun:"source_kind" json:"source_kind"`
	SourceBindingKey string  `bun:"source_binding_key" json:"source_binding_key"`
	CreatedAt        string  `bun:"created_at" json:"created_at"`
	UpdatedAt        string  `bun:"updated_at" json:"updated_at"`
	RevokedAt        *string `bun:"revoked_at" json:"revoked_at"`
}

// Entry is a connection together with its connector, as the feed reads them.
type Entry struct {
	Connection *Connection
	Connector  *Connector
}

// ExpectedProfileKey computes the browser profile key that a connection's runs must carry
// (SPEC §1.3). It is derived, never stored, so a manifest change applies at once.
func ExpectedProfileKey(conn *Connection, connector *Connector) string {
	var manifestKey *string
	if connector != nil {
		manifestKey = connector.ProfileKey
	}
	return ProfileKeyFor(conn.ConnectorID, conn.ConnectionID, manifestKey)
}

// ProfileKeyFor is the rule of SPEC §1.3 on the values it needs: the trimmed manifest profile key
// when non-empty, else the connector id; then ":" and the connection id, except for a legacy
// connection whose id is the connector id.
func ProfileKeyFor(connectorID, connectionID string, manifestKey *string) string {
	base := connectorID
	if manifestKey != nil && strings.TrimSpace(*manifestKey) != "" {
		base = strings.TrimSpace(*manifestKey)
	}
	if connectionID == connectorID {
		return base
	}
	return base + ":" + connectionID
}

// DerivedConnectionID is the id given to a connection created without one (SPEC §1.2).
func DerivedConnectionID(connectorID, sourceKind, bindingKey string) string {
	sum := sha256.Sum256([]byte("owner_local\n" + connectorID + "\n" + sourceKind + "\n" + bindingKey))
	return "cin_" + hex.EncodeToString(sum[:])[:24]
}
