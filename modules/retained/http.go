package retained

import (
	"errors"
	"regexp"

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
	if err := o.Known(append(figureFields[:], "last_record_at")...); err != nil {
		return Figures{}, err
	}
	var f Figures
	for i, dst := range f.counters() {
		if *dst, _, err = o.NonNegativeInt(figureFields[i], true); err != nil {
			return f, err
		}
	}
	// The stream's own total_bytes is a sum the feed reports: it must stay a safe integer too
	// (three figures of 2^53-1 each are valid alone).
	if field, sum, ok := (Figures{}).fitsWith(f); !ok {
		return f, tooLarge(field, "the stream's "+sum)
	}
	if s, ok, err := o.String("last_record_at"); err != nil {
		return f, err
	} else if ok {
		t, ok := httpx.ParseTimestamp(s)
		if !ok {
			return f, httpx.Invalid("last_record_at", "must be an RFC 3339 timestamp with an offset of at most ±23:59")
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

// tooLarge is the 400 for a figure that would carry a sum beyond 2^53-1.
func tooLarge(field, sum string) *httpx.Error {
	return httpx.Invalid(field, "would make %s exceed 2^53-1 (9007199254740991), the largest integer every JSON client keeps exactly", sum)
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
	var sum *SumTooLargeError
	if errors.As(err, &sum) {
		return tooLarge(sum.Field, "the connection's "+sum.Sum)
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
