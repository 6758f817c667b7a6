package catalog

import (
	"context"
	"errors"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/uptrace/bun"

	"connsum/modules/httpx"
)

// ChangeNotifier hears about connector and connection writes after they commit; the overview
// cache uses it to invalidate at once (SPEC §4.7).
type ChangeNotifier interface {
	CatalogChanged()
}

// WriteHook runs inside the catalog's write transactions so derived state (the run read model)
// changes atomically with the catalog.
type WriteHook interface {
	// ConnectionCreated runs after a new connection row is inserted.
	ConnectionCreated(ctx context.Context, tx bun.Tx, conn *Connection, connector *Connector) error
	// ProfileKeyChanged runs after a connector's browser profile key changed.
	ProfileKeyChanged(ctx context.Context, tx bun.Tx, connectorID string) error
}

// Handlers serves the catalog's write routes.
type Handlers struct {
	store    *Store
	notifier ChangeNotifier
}

// NewHandlers returns the catalog handlers; notifier may be nil.
func NewHandlers(store *Store, notifier ChangeNotifier) *Handlers {
	return &Handlers{store: store, notifier: notifier}
}

// Routes implements httpx.Registrar.
func (h *Handlers) Routes() []httpx.Route {
	return []httpx.Route{
		{Method: fiber.MethodPut, Path: "/_ref/connectors/:connector_id", Access: httpx.Owner, Handler: h.putConnector},
		{Method: fiber.MethodGet, Path: "/_ref/connectors/:connector_id/manifest", Access: httpx.Owner, Handler: h.getConnector},
		{Method: fiber.MethodPost, Path: "/_ref/connections", Access: httpx.Owner, Handler: h.createConnection},
		{Method: fiber.MethodPatch, Path: "/_ref/connections/:id", Access: httpx.Owner, Handler: h.patchConnection},
	}
}

func (h *Handlers) changed() {
	if h.notifier != nil {
		h.notifier.CatalogChanged()
	}
}

// ConnectorJSON is the API shape of a stored connector.
func ConnectorJSON(c *Connector) fiber.Map {
	return fiber.Map{"object": "connector", "connector_id": c.ConnectorID, "display_name": c.DisplayName,
		"version": c.Version, "listed": c.Listed, "manifest": c.Manifest, "created_at": c.CreatedAt, "updated_at": c.UpdatedAt}
}

// ConnectionJSON is the API shape of a connection.
func ConnectionJSON(c *Connection) fiber.Map {
	return fiber.Map{"object": "connection", "connection_id": c.ConnectionID, "connector_instance_id": c.ConnectionID,
		"connector_id": c.ConnectorID, "display_name": c.DisplayName, "status": c.Status, "source_kind": c.SourceKind,
		"source_binding_key": c.SourceBindingKey, "created_at": c.CreatedAt, "updated_at": c.UpdatedAt, "revoked_at": c.RevokedAt}
}

func (h *Handlers) putConnector(c *fiber.Ctx) error {
	id := c.Params("connector_id")
	if !ValidConnectorID(id) {
		return httpx.Invalid("connector_id", "must match ^[a-z0-9][a-z0-9._-]{0,127}$")
	}
	body, err := httpx.Body(c)
	if err != nil {
		return err
	}
	m, err := ParseManifest(body)
	if err != nil {
		return err
	}
	conn, created, err := h.store.PutConnector(c.UserContext(), id, m)
	if err != nil {
		return err
	}
	h.changed()
	status := fiber.StatusOK
	if created {
		status = fiber.StatusCreated
	}
	return httpx.JSON(c, status, ConnectorJSON(conn))
}

func (h *Handlers) getConnector(c *fiber.Ctx) error {
	id := c.Params("connector_id")
	if !ValidConnectorID(id) {
		return httpx.NotFound("connector_id", "no connector %q", id)
	}
	conn, err := h.store.Connector(c.UserContext(), id)
	if errors.Is(err, ErrNotFound) {
		return httpx.NotFound("connector_id", "no connector %q", id)
	}
	if err != nil {
		return err
	}
	return httpx.JSON(c, fiber.StatusOK, ConnectorJSON(conn))
}

func (h *Handlers) createConnection(c *fiber.Ctx) error {
	body, err := httpx.Body(c)
	if err != nil {
		return err
	}
	in, err := ParseConnectionInput(body)
	if err != nil {
		return err
	}
	conn, created, err := h.store.CreateConnection(c.UserContext(), in)
	switch {
	case errors.Is(err, ErrNotFound):
		return httpx.NotFound("connector_id", "no connector %q", in.ConnectorID)
	case errors.Is(err, ErrConflict):
		return httpx.Conflict("connection_id", "%s", strings.TrimPrefix(err.Error(), ErrConflict.Error()+": "))
	case err != nil:
		return err
	}
	status := fiber.StatusOK
	if created {
		h.changed()
		status = fiber.StatusCreated
	}
	return httpx.JSON(c, status, ConnectionJSON(conn))
}

func (h *Handlers) patchConnection(c *fiber.Ctx) error {
	id := c.Params("id")
	body, err := httpx.Body(c)
	if err != nil {
		return err
	}
	p, err := ParseConnectionPatch(body)
	if err != nil {
		return err
	}
	conn, err := h.store.PatchConnection(c.UserContext(), id, p)
	if errors.Is(err, ErrNotFound) {
		return httpx.NotFound("connection_id", "no connection %q", id)
	}
	if err != nil {
		return err
	}
	h.changed()
	return httpx.JSON(c, fiber.StatusOK, ConnectionJSON(conn))
}
