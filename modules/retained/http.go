package retained

import (
	"errors"
	"regexp"
	"time"

	"github.com/gofiber/fiber/v2"

	"connsum/modules/bootstrap"
	"connsum/modules/httpx"
)

var streamRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ParseFigures validates a PUT body: the six counters are required non-negative integers below
// 2^53; last_record_at is an optional RFC 3339 timestamp with an offset, stored in UTC.
func ParseFigures(raw []byte) (Figures, error) {
	o, err := httpx.ParseObject(raw, "")
	if err != nil {
		return Figures{}, err
	}
	var f Figures
	for _, fld := range []struct {
		key string
		dst *int64
	}{
		{"record_count", &f.RecordCount}, {"record_json_bytes", &f.RecordJSONBytes},
		{"record_changes_count", &f.RecordChangesCount}, {"record_changes_json_bytes", &f.RecordChangesJSONBytes},
		{"blob_count", &f.BlobCount}, {"blob_bytes", &f.BlobBytes},
	} {
		if *fld.dst, _, err = o.NonNegativeInt(fld.key, true); err != nil {
			return f, err
		}
	}
	if s, ok, err := o.String("last_record_at"); err != nil {
		return f, err
	} else if ok {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return f, httpx.Invalid("last_record_at", "must be an RFC 3339 timestamp with an offset")
		}
		// Stored as fixed-width UTC text: a year outside 0001-9999 once in UTC would not fit.
		if y := t.UTC().Year(); y < 1 || y > 9999 {
			return f, httpx.Invalid("last_record_at", "must be between years 1 and 9999 (in UTC)")
		}
		u := bootstrap.FormatTime(t)
		f.LastRecordAt = &u
	}
	return f, o.RejectUnknown()
}

// Handlers serves the retained-size write routes.
type Handlers struct{ store *Store }

// NewHandlers returns the retained handlers.
func NewHandlers(s *Store) *Handlers { return &Handlers{store: s} }

// Routes implements httpx.Registrar.
func (h *Handlers) Routes() []httpx.Route {
	return []httpx.Route{
		{Method: fiber.MethodPut, Path: "/_ref/connections/:id/retained/:stream", Access: httpx.Owner, Handler: h.put},
		{Method: fiber.MethodDelete, Path: "/_ref/connections/:id/retained/:stream", Access: httpx.Owner, Handler: h.delete},
	}
}

func (h *Handlers) put(c *fiber.Ctx) error {
	id, stream := c.Params("id"), c.Params("stream")
	if !streamRE.MatchString(stream) {
		return httpx.Invalid("stream", "must match %s", streamRE.String())
	}
	body, err := httpx.Body(c)
	if err != nil {
		return err
	}
	f, err := ParseFigures(body)
	if err != nil {
		return err
	}
	row, err := h.store.Put(c.UserContext(), id, stream, f)
	if errors.Is(err, ErrNotFound) {
		return httpx.NotFound("connection_id", "no connection %q", id)
	}
	if err != nil {
		return err
	}
	return httpx.JSON(c, fiber.StatusOK, row)
}

func (h *Handlers) delete(c *fiber.Ctx) error {
	id, stream := c.Params("id"), c.Params("stream")
	if err := h.store.Delete(c.UserContext(), id, stream); errors.Is(err, ErrNotFound) {
		return httpx.NotFound("stream", "no retained row for connection %q and stream %q", id, stream)
	} else if err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}
