package runs

import (
	"errors"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"connsum/modules/httpx"
)

// IngestHandlers serves POST /_ref/spine/events.
type IngestHandlers struct {
	ingester  *Ingester
	maxEvents int
}

// NewIngestHandlers returns the ingest route; o.MaxBatchEvents bounds a batch.
func NewIngestHandlers(in *Ingester, o Options) *IngestHandlers {
	return &IngestHandlers{ingester: in, maxEvents: o.WithDefaults().MaxBatchEvents}
}

// Routes implements httpx.Registrar.
func (h *IngestHandlers) Routes() []httpx.Route {
	return []httpx.Route{{Method: fiber.MethodPost, Path: "/_ref/spine/events", Access: httpx.Owner, Handler: h.post}}
}

func (h *IngestHandlers) post(c *fiber.Ctx) error {
	body, err := httpx.Body(c)
	if err != nil {
		return err
	}
	events, err := ParseBatch(body, h.maxEvents)
	if err != nil {
		return err
	}
	res, err := h.ingester.Append(c.UserContext(), events)
	var ce *ConflictError
	if errors.As(err, &ce) {
		return httpx.Conflict("events["+strconv.Itoa(ce.Index)+"].event_id", "%s", ce.Error())
	}
	if err != nil {
		return err
	}
	return httpx.JSON(c, fiber.StatusOK, res)
}
