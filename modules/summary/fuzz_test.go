package summary_test

import (
	"encoding/base64"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"connsum/modules/catalog"
	"connsum/modules/httpx"
	"connsum/modules/runs"
	"connsum/modules/summary"
)

var fuzzConnectorRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,127}$`)

// queryPairs splits a raw query string the way the feed handler sees it (fasthttp's parser,
// repeated keys kept).
func queryPairs(raw string) [][2]string {
	var a fasthttp.Args
	a.Parse(raw)
	var out [][2]string
	a.VisitAll(func(k, v []byte) { out = append(out, [2]string{string(k), string(v)}) })
	return out
}

func FuzzParseFeedQuery(f *testing.F) {
	cursor := summary.EncodeCursor(catalog.Key{ConnectorID: "amazon", CreatedAt: "2026-11-20T08:00:00.000Z", ConnectionID: "cin_a"},
		summary.ListQuery{Pipeline: summary.PipelineOverview})
	deepCursor := summary.EncodeCursor(catalog.Key{ConnectorID: "amazon", CreatedAt: "2026-11-20T08:00:00.000Z", ConnectionID: "cin_a"},
		summary.ListQuery{ConnectorID: "amazon", Pipeline: summary.PipelineDeep})
	for _, s := range []string{
		"", "connection=cin_a", "connection=amazon&_data=1", "connection=", "connection=%20", "connection=a&connection=b",
		"connection=a&limit=5", "connector_id=amazon", "connector_id=Amazon", "depth=deep", "depth=shallow", "depth=x",
		"limit=1", "limit=0", "limit=1001", "limit=-1", "limit=1e2", "limit=5&cursor=" + cursor, "cursor=" + cursor,
		"limit=5&cursor=" + cursor + "x", "connector_id=amazon&depth=deep&limit=2&cursor=" + deepCursor,
		"limit=2&cursor=" + deepCursor, "limit=2&cursor=!!!", "x=1", "=1", "&&&", "limit=1&limit=1", "_data=1",
		"connector_id=x%27%3B%20DROP%20TABLE%20spine_events%3B--",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		pairs := queryPairs(raw)
		fr, err := summary.ParseFeedQuery(pairs)
		if err != nil {
			e, ok := httpx.As(err)
			if !ok || e.Status != 400 || e.Code != "invalid_request" || e.Message == "" {
				t.Fatalf("error %T %v: want a 400 *httpx.Error", err, err)
			}
			// The field names the parameter at fault, which was in the query.
			found := false
			for _, kv := range pairs {
				found = found || kv[0] == e.Field
			}
			if !found {
				t.Fatalf("error names %q, which is not a parameter of %q", e.Field, raw)
			}
			return
		}
		seen := map[string]bool{}
		for _, kv := range pairs {
			switch kv[0] {
			case "connection", "connector_id", "depth", "limit", "cursor", "_data":
			default:
				t.Fatalf("accepted the unknown parameter %q", kv[0])
			}
			if seen[kv[0]] {
				t.Fatalf("accepted the repeated parameter %q", kv[0])
			}
			seen[kv[0]] = true
		}
		if fr.Scoped {
			if strings.TrimSpace(fr.Connection) == "" || !reflect.DeepEqual(fr.List, summary.ListQuery{Pipeline: summary.PipelineOverview}) {
				t.Fatalf("scoped request %+v", fr)
			}
			return
		}
		q := fr.List
		if q.Limit < 0 || q.Limit > 1000 || (q.ConnectorID != "" && !fuzzConnectorRE.MatchString(q.ConnectorID)) ||
			(q.Pipeline != summary.PipelineOverview && q.Pipeline != summary.PipelineDeep) || q.Concurrency != 0 {
			t.Fatalf("accepted %+v", q)
		}
		if q.After != nil {
			if q.Limit == 0 || !seen["cursor"] {
				t.Fatalf("a cursor position without limit or cursor: %+v", q)
			}
			// The position came from a cursor of this very query.
			again, ok := summary.DecodeCursor(summary.EncodeCursor(*q.After, q), q)
			if !ok || *again != *q.After {
				t.Fatalf("cursor position %+v does not round-trip", *q.After)
			}
		} else if seen["cursor"] {
			t.Fatal("a cursor was accepted without a position")
		}
	})
}

func FuzzDecodeCursor(f *testing.F) {
	valid := summary.EncodeCursor(catalog.Key{ConnectorID: "amazon", CreatedAt: "2026-11-20T08:00:00.000Z", ConnectionID: "cin_a"},
		summary.ListQuery{Pipeline: summary.PipelineOverview})
	f.Add(valid, "", false, "amazon", "2026-11-20T08:00:00.000Z", "cin_a", uint16(3))
	f.Add(valid, "amazon", true, "a", "t", "c", uint16(0))
	f.Add("", "", false, "", "", "", uint16(0))
	f.Add("e30", "", false, "k", "t", "c", uint16(9))
	f.Add(base64.RawURLEncoding.EncodeToString([]byte(`{"k":{"k":"a","t":"b","c":"c"},"f":"","p":"overview"}`)), "", false, "x", "y", "z", uint16(1))
	f.Add(strings.Repeat("A", 5000), "", false, "é", "\xff", "c", uint16(7))
	f.Fuzz(func(t *testing.T, s, connectorID string, deep bool, k, at, id string, flip uint16) {
		q := summary.ListQuery{ConnectorID: connectorID, Pipeline: summary.PipelineOverview}
		other := summary.ListQuery{ConnectorID: connectorID + "x", Pipeline: summary.PipelineOverview}
		if deep {
			q.Pipeline = summary.PipelineDeep
		}
		// Arbitrary text: no panic; what decodes is a full position, bound to its filter.
		if key, ok := summary.DecodeCursor(s, q); ok {
			if key.ConnectorID == "" || key.ConnectionID == "" || key.CreatedAt == "" {
				t.Fatalf("decoded an incomplete position %+v", key)
			}
			if _, ok := summary.DecodeCursor(s, other); ok {
				t.Fatal("a cursor decoded for another filter")
			}
		}
		// A cursor the service made decodes to its position, and any altered byte is refused.
		if k == "" || at == "" || id == "" || !utf8.ValidString(k) || !utf8.ValidString(at) || !utf8.ValidString(id) || !utf8.ValidString(connectorID) {
			return
		}
		want := catalog.Key{ConnectorID: k, CreatedAt: at, ConnectionID: id}
		enc := summary.EncodeCursor(want, q)
		got, ok := summary.DecodeCursor(enc, q)
		if !ok || *got != want {
			t.Fatalf("cursor of %+v decodes as %+v, %v", want, got, ok)
		}
		if _, ok := summary.DecodeCursor(enc, other); ok {
			t.Fatal("a cursor decoded for another filter")
		}
		raw, err := base64.RawURLEncoding.DecodeString(enc)
		if err != nil {
			t.Fatalf("cursor %q is not base64url: %v", enc, err)
		}
		i := int(flip) % len(raw)
		raw[i] ^= byte(1 << (flip % 8))
		if key, ok := summary.DecodeCursor(base64.RawURLEncoding.EncodeToString(raw), q); ok {
			t.Fatalf("a cursor with byte %d altered decodes as %+v", i, key)
		}
		j := int(flip) % len(enc)
		alphabet := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
		swapped := enc[:j] + string(alphabet[(strings.IndexByte(alphabet, enc[j])+1+int(flip)%63)%64]) + enc[j+1:]
		if key, ok := summary.DecodeCursor(swapped, q); ok {
			t.Fatalf("a cursor with character %d altered decodes as %+v", j, key)
		}
	})
}

func FuzzParseRunsQuery(f *testing.F) {
	key := runs.RunKey{LastAt: "2026-11-20T08:00:00.000Z", RunID: "run_1"}
	cursor := summary.EncodeRunsCursor(key, summary.RunsQuery{ConnectionID: "cin_a"})
	failed := summary.EncodeRunsCursor(key, summary.RunsQuery{ConnectionID: "cin_a", Status: "failed"})
	for _, s := range []string{
		"", "status=failed", "status=leased", "status=started", "status=", "status=a&status=a", "limit=1", "limit=1000",
		"limit=0", "limit=1001", "limit=-1", "limit=1e2", "cursor=" + cursor, "cursor=" + cursor + "&limit=3",
		"status=failed&cursor=" + failed, "cursor=" + failed, "status=failed&cursor=" + cursor, "cursor=" + cursor + "x",
		"cursor=!!!", "bogus=1", "=1", "&&&", "_data=1",
	} {
		f.Add(s, "cin_a")
	}
	f.Fuzz(func(t *testing.T, raw, connection string) {
		pairs := queryPairs(raw)
		q, err := summary.ParseRunsQuery(connection, pairs)
		if err != nil {
			e, ok := httpx.As(err)
			if !ok || e.Status != 400 || e.Code != "invalid_request" || e.Message == "" {
				t.Fatalf("error %T %v: want a 400 *httpx.Error", err, err)
			}
			found := false
			for _, kv := range pairs {
				found = found || kv[0] == e.Field
			}
			if !found {
				t.Fatalf("error names %q, which is not a parameter of %q", e.Field, raw)
			}
			return
		}
		if q.ConnectionID != connection || q.Limit < 1 || q.Limit > 1000 || (q.Status != "" && !runs.IsRunStatus(q.Status)) {
			t.Fatalf("accepted %+v", q)
		}
		if q.After == nil {
			return
		}
		// The position came from a cursor of this connection and filter, and nothing else opens it.
		enc := summary.EncodeRunsCursor(*q.After, q)
		if again, ok := summary.DecodeRunsCursor(enc, q); !ok || *again != *q.After {
			t.Fatalf("cursor position %+v does not round-trip", *q.After)
		}
		other := q
		other.ConnectionID += "x"
		if _, ok := summary.DecodeRunsCursor(enc, other); ok {
			t.Fatal("a runs cursor opened for another connection")
		}
		if _, ok := summary.DecodeCursor(enc, summary.ListQuery{Pipeline: summary.PipelineOverview}); ok {
			t.Fatal("a runs cursor opened as an overview cursor")
		}
	})
}
