// Package runs owns the spine event log: ingest, the run-summary fold, run pages with
// per-projection reuse, and the matcher that decides which runs belong to a connection.
package runs

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/uptrace/bun"

	"connsum/modules/bootstrap"
	"connsum/modules/httpx"
	"connsum/modules/jsonx"
)

// Limits of one event (SPEC §1.4).
const (
	MaxDataBytes = 64 << 10
	MaxDataDepth = 32
)

// The patterns are held as the interface the checks take, so that passing one boxes nothing
// (a charPattern passed by value was copied to the heap on every field of every event).
var (
	eventIDRE    pattern = charPattern{text: `^[A-Za-z0-9_.:-]{1,128}$`, max: 128, first: idChar, rest: idChar}
	eventTypeRE  pattern = charPattern{text: `^[a-z][a-z0-9_.]{0,63}$`, max: 64, first: lower, rest: func(b byte) bool { return lower(b) || digit(b) || b == '_' || b == '.' }}
	statusRE     pattern = charPattern{text: `^[a-z][a-z0-9_]{0,63}$`, max: 64, first: lower, rest: func(b byte) bool { return lower(b) || digit(b) || b == '_' }}
	sourceKindRE pattern = oneOf{"connector", "provider_native"}
)

// pattern is what an id-like field must match; the grammars of SPEC §1.4 are simple character
// classes, checked byte by byte (a regexp per field was a tenth of ingest's validation time).
type pattern interface {
	MatchString(s string) bool
	String() string
}

// charPattern is ^[first][rest]{0,max-1}$ over ASCII.
type charPattern struct {
	text        string
	max         int
	first, rest func(byte) bool
}

func (p charPattern) String() string { return p.text }

func (p charPattern) MatchString(s string) bool {
	if len(s) == 0 || len(s) > p.max || !p.first(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !p.rest(s[i]) {
			return false
		}
	}
	return true
}

// oneOf matches one of a few literal values.
type oneOf []string

func (o oneOf) String() string { return strings.Join(o, " or ") }

func (o oneOf) MatchString(s string) bool {
	for _, v := range o {
		if s == v {
			return true
		}
	}
	return false
}

func lower(b byte) bool { return b >= 'a' && b <= 'z' }
func digit(b byte) bool { return b >= '0' && b <= '9' }
func idChar(b byte) bool {
	return lower(b) || digit(b) || (b >= 'A' && b <= 'Z') || b == '_' || b == '.' || b == ':' || b == '-'
}

// Event is one validated spine event with the fields the fold needs extracted at write time,
// so reads never parse `data` except for terminal events.
type Event struct {
	bun.BaseModel `bun:"table:spine_events"`

	EventSeq            int64   `bun:"event_seq,pk,autoincrement"`
	EventID             string  `bun:"event_id"`
	EventType           string  `bun:"event_type"`
	OccurredAt          string  `bun:"occurred_at"`
	RecordedAt          string  `bun:"recorded_at"`
	RunID               *string `bun:"run_id"`
	SourceKind          *string `bun:"source_kind"`
	SourceID            *string `bun:"source_id"`
	ConnectorInstanceID *string `bun:"connector_instance_id"`
	ConnectionID        *string `bun:"connection_id"`
	Status              *string `bun:"status"`
	Data                *string `bun:"data"`
	ContentHash         string  `bun:"content_hash"`
	ConnectionRef       *string `bun:"connection_ref"`
	FailureReason       *string `bun:"failure_reason"`
	BSPresent           bool    `bun:"bs_present"`
	BSStatus            *string `bun:"bs_status"`
	BSWaitReason        *string `bun:"bs_wait_reason"`
	BSProfileKey        *string `bun:"bs_profile_key"`
}

// ParseEvent validates one event object; path names it in errors ("events[3]").
func ParseEvent(raw []byte, path string) (*Event, error) {
	o, err := httpx.ParseObject(raw, path)
	if err != nil {
		return nil, err
	}
	return parseEvent(o)
}

// parseEvent validates one event object already split into its fields.
func parseEvent(o *httpx.Object) (*Event, error) {
	if err := o.Known(eventFields...); err != nil {
		return nil, err
	}
	e := &Event{}
	str := func(key string, re pattern, what string) (*string, error) {
		s, ok, err := o.String(key)
		if err != nil || !ok {
			return nil, err
		}
		if !re.MatchString(s) {
			return nil, httpx.Invalid(o.Path(key), "must match %s", what)
		}
		return &s, nil
	}
	id, err := str("event_id", eventIDRE, eventIDRE.String())
	if err != nil {
		return nil, err
	}
	if id != nil {
		e.EventID = *id
	}
	if e.EventType, err = o.RequiredString("event_type"); err != nil {
		return nil, err
	}
	if !eventTypeRE.MatchString(e.EventType) {
		return nil, httpx.Invalid(o.Path("event_type"), "must match %s", eventTypeRE.String())
	}
	at, err := o.RequiredString("occurred_at")
	if err != nil {
		return nil, err
	}
	t, ok := httpx.ParseTimestamp(at)
	if !ok { // RFC 3339 parsing requires the offset ("Z" or ±hh:mm, at most ±23:59)
		return nil, httpx.Invalid(o.Path("occurred_at"), "must be an RFC 3339 timestamp with an offset of at most ±23:59, e.g. 2026-11-20T08:01:02.345+01:00")
	}
	// The range applies to the stored UTC time: 9999-12-31T23:59-01:00 is in year 10000 and
	// would break the fixed-width text whose order is time order.
	if u := t.UTC(); u.Year() < 1970 || u.Year() > 9999 {
		return nil, httpx.Invalid(o.Path("occurred_at"), "must be between 1970 and 9999 (in UTC)")
	}
	e.OccurredAt = t.UTC().Format(bootstrap.TimeFormat)
	if e.RunID, err = str("run_id", eventIDRE, eventIDRE.String()); err != nil {
		return nil, err
	}
	if e.SourceKind, err = str("source_kind", sourceKindRE, "connector or provider_native"); err != nil {
		return nil, err
	}
	if e.SourceID, err = str("source_id", eventIDRE, eventIDRE.String()); err != nil {
		return nil, err
	}
	if (e.SourceKind == nil) != (e.SourceID == nil) {
		return nil, httpx.Invalid(o.Path("source_id"), "source_kind and source_id come together or not at all")
	}
	if e.ConnectorInstanceID, err = str("connector_instance_id", eventIDRE, eventIDRE.String()); err != nil {
		return nil, err
	}
	if e.ConnectionID, err = str("connection_id", eventIDRE, eventIDRE.String()); err != nil {
		return nil, err
	}
	if e.ConnectorInstanceID != nil && e.ConnectionID != nil && *e.ConnectorInstanceID != *e.ConnectionID {
		return nil, httpx.Invalid(o.Path("connection_id"), "connection_id and connector_instance_id name the same thing and must agree")
	}
	if e.Status, err = str("status", statusRE, statusRE.String()); err != nil {
		return nil, err
	}
	var data dataView = mapView(nil)
	if raw, ok := o.Raw("data"); ok {
		var canonical string
		if canonical, data, err = parseData(raw, o.Path("data")); err != nil {
			return nil, err
		}
		// The limit holds for what is stored, not only for what was sent: the canonical form
		// can be longer than the text sent (U+2028 and U+2029 are always escaped, 3 bytes → 6).
		if len(canonical) > MaxDataBytes {
			return nil, httpx.Invalid(o.Path("data"), "must be at most %d bytes encoded (as stored: %d)", MaxDataBytes, len(canonical))
		}
		e.Data = &canonical
	}
	if err := o.RejectUnknown(); err != nil {
		return nil, err
	}
	e.extract(data)
	e.ContentHash = e.contentHash()
	return e, nil
}

// eventFields are the keys of an event object (SPEC §1.4).
var eventFields = []string{"event_id", "event_type", "occurred_at", "run_id", "source_kind", "source_id",
	"connector_instance_id", "connection_id", "status", "data"}

// canonicalData is the stored form of data: keys sorted, no insignificant space, numbers as
// sent, and no HTML escaping — json.Marshal would store `<` as `\u003c`, six bytes for one, so
// that 64 KiB sent could be 384 KiB stored.
func canonicalData(data map[string]any) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(data) // decoded from valid JSON with UseNumber: it cannot fail
	return string(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

// hashedData is data as the content hash reads it: the HTML-escaped form that earlier builds
// stored, so that an event stored by them and sent again hashes the same (a duplicate, not a
// conflict). Only data holding <, > or & differs.
func hashedData(data string) string {
	if !strings.ContainsAny(data, "<>&") {
		return data
	}
	var buf bytes.Buffer
	json.HTMLEscape(&buf, []byte(data))
	return buf.String()
}

// parseData checks size and depth and returns the canonical form of data (canonicalData) with
// what extract reads of it. Data without escapes is canonicalised from its text (jsonx.Canonical)
// and read through the split object; other data is decoded (numbers exactly) and encoded again.
// Both ways give the same bytes, so the content hash of an event never depends on the way taken.
func parseData(raw json.RawMessage, path string) (string, dataView, error) {
	if len(raw) == 0 || raw[0] != '{' {
		return "", nil, httpx.Invalid(path, "must be a JSON object")
	}
	if len(raw) > MaxDataBytes {
		return "", nil, httpx.Invalid(path, "must be at most %d bytes encoded", MaxDataBytes)
	}
	if depth(raw) > MaxDataDepth {
		return "", nil, httpx.Invalid(path, "must be nested at most %d levels", MaxDataDepth)
	}
	if canonical, ok := jsonx.Canonical(raw); ok {
		o, err := httpx.ParseMember(raw, path)
		if err != nil {
			return "", nil, err
		}
		return canonical, objectView{o}, nil
	}
	return decodedData(raw, path)
}

// decodedData is parseData's way for any data: decoded with exact numbers, encoded again.
func decodedData(raw json.RawMessage, path string) (string, dataView, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return "", nil, httpx.Invalid(path, "must be a JSON object")
	}
	return canonicalData(m), mapView(m), nil
}

// dataView is what extract reads of an event's data: the non-empty string at a key (nil when
// absent, empty or not a string) and a member that is an object.
type dataView interface {
	text(key string) *string
	object(key string) (dataView, bool)
}

// mapView reads decoded data.
type mapView map[string]any

func (m mapView) text(key string) *string { return nonEmpty(m[key]) }

func (m mapView) object(key string) (dataView, bool) {
	sub, ok := m[key].(map[string]any)
	return mapView(sub), ok
}

// objectView reads data through its split members, without decoding what extract never reads.
type objectView struct{ o *httpx.Object }

func (v objectView) text(key string) *string {
	s, ok, err := v.o.String(key)
	if !ok || err != nil || s == "" {
		return nil
	}
	return &s
}

func (v objectView) object(key string) (dataView, bool) {
	sub, ok, err := v.o.Object(key)
	if !ok || err != nil {
		return nil, false
	}
	return objectView{sub}, true
}

// depth returns the deepest nesting of objects and arrays, ignoring brackets inside strings.
func depth(raw []byte) int {
	d, maxD, inStr, esc := 0, 0, false, false
	for _, b := range raw {
		switch {
		case esc:
			esc = false
		case inStr && b == '\\':
			esc = true
		case b == '"':
			inStr = !inStr
		case inStr:
		case b == '{' || b == '[':
			d++
			maxD = max(maxD, d)
		case b == '}' || b == ']':
			d--
		}
	}
	return maxD
}

func nonEmpty(v any) *string {
	if s, ok := v.(string); ok && s != "" {
		return &s
	}
	return nil
}

func firstNonEmpty(vals ...*string) *string {
	for _, v := range vals {
		if v != nil && *v != "" {
			return v
		}
	}
	return nil
}

// extract fills the columns the fold reads, so reads need not parse data.
func (e *Event) extract(data dataView) {
	e.ConnectionRef = firstNonEmpty(e.ConnectorInstanceID, e.ConnectionID, data.text("connector_instance_id"), data.text("connection_id"))
	e.FailureReason = firstNonEmpty(data.text("reason"), data.text("failure_reason"))
	if bs, ok := data.object("browser_surface"); ok {
		e.BSPresent = true
		e.BSStatus = bs.text("browser_surface_status")
		e.BSWaitReason = bs.text("browser_surface_wait_reason")
		e.BSProfileKey = bs.text("browser_surface_profile_key")
	}
}

// contentHash identifies the event's content (everything but its id and server fields), so a
// re-sent event with the same id is told apart from a conflicting one.
func (e *Event) contentHash() string {
	buf := make([]byte, 0, 256)
	var data *string
	if e.Data != nil {
		d := hashedData(*e.Data)
		data = &d
	}
	for _, p := range []*string{&e.EventType, &e.OccurredAt, e.RunID, e.SourceKind, e.SourceID, e.ConnectorInstanceID, e.ConnectionID, e.Status, data} {
		if p == nil {
			buf = append(buf, 0)
			continue
		}
		buf = append(buf, 1)
		buf = strconv.AppendInt(buf, int64(len(*p)), 10)
		buf = append(buf, ':')
		buf = append(buf, *p...)
	}
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:])
}

// newEventID generates an id for an event sent without one.
func newEventID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "evt_" + hex.EncodeToString(b[:])
}

// MaxBatchEvents bounds one POST /_ref/spine/events batch.
const MaxBatchEvents = 5000

// ParseBatch validates a {"events": [...]} body; the whole batch is refused on the first bad event.
func ParseBatch(raw []byte, maxEvents int) ([]*Event, error) {
	o, err := httpx.ParseObject(raw, "")
	if err != nil {
		return nil, err
	}
	if err := o.Known("events"); err != nil {
		return nil, err
	}
	items, ok, err := o.Array("events")
	if err != nil {
		return nil, err
	}
	if !ok || len(items) == 0 {
		return nil, httpx.Invalid("events", "is required and must hold at least one event")
	}
	if err := o.RejectUnknown(); err != nil {
		return nil, err
	}
	if len(items) > maxEvents {
		return nil, &httpx.Error{Status: 413, Code: "too_large", Message: fmt.Sprintf("a batch holds at most %d events", maxEvents), Field: "events"}
	}
	out := make([]*Event, len(items))
	errs := make([]error, len(items))
	// Validation is CPU work independent per event: large batches use every core. The error
	// reported is still the first bad event's, as with a sequential loop.
	workers := min(runtime.GOMAXPROCS(0), (len(items)+127)/128)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < len(items); i += workers {
				// The body was checked as a whole (encoding, JSON, strings): each event only
				// needs splitting.
				o, err := httpx.ParseMember(items[i], "events["+strconv.Itoa(i)+"]")
				if err == nil {
					out[i], err = parseEvent(o)
				}
				errs[i] = err
			}
		}(w)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
