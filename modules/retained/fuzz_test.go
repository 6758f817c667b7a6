package retained_test

import (
	"encoding/json"
	"math/big"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"connsum/modules/httpx"
	"connsum/modules/retained"
)

var (
	fuzzFigureTimeRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$`)
	fuzzOffsetRE     = regexp.MustCompile(`[+-](\d{2}):(\d{2})$`)
)

func FuzzParseFigures(f *testing.F) {
	for _, s := range []string{
		`{"record_count":1,"record_json_bytes":2,"record_changes_count":3,"record_changes_json_bytes":4,"blob_count":5,"blob_bytes":6}`,
		`{"record_count":0,"record_json_bytes":0,"record_changes_count":0,"record_changes_json_bytes":0,"blob_count":0,"blob_bytes":9007199254740991,"last_record_at":"2026-11-20T08:01:02.345+01:00"}`,
		`{"record_count":1e2,"record_json_bytes":2.0,"record_changes_count":3,"record_changes_json_bytes":4,"blob_count":5,"blob_bytes":6}`,
		`{"record_count":-1,"record_json_bytes":2,"record_changes_count":3,"record_changes_json_bytes":4,"blob_count":5,"blob_bytes":6}`,
		`{"record_count":1.5,"record_json_bytes":2,"record_changes_count":3,"record_changes_json_bytes":4,"blob_count":5,"blob_bytes":6}`,
		`{"record_count":"1","record_json_bytes":2,"record_changes_count":3,"record_changes_json_bytes":4,"blob_count":5,"blob_bytes":6}`,
		`{"record_count":1,"record_json_bytes":2,"record_changes_count":3,"record_changes_json_bytes":4,"blob_count":5,"blob_bytes":9007199254740992}`,
		`{"record_count":1,"record_json_bytes":2,"record_changes_count":3,"record_changes_json_bytes":4,"blob_count":5,"blob_bytes":1e400}`,
		`{"record_count":1,"record_json_bytes":2,"record_changes_count":3,"record_changes_json_bytes":4,"blob_count":5}`,
		`{"record_count":1,"record_json_bytes":2,"record_changes_count":3,"record_changes_json_bytes":4,"blob_count":5,"blob_bytes":6,"last_record_at":"2026-11-20T08:01:02"}`,
		`{"record_count":1,"record_json_bytes":2,"record_changes_count":3,"record_changes_json_bytes":4,"blob_count":5,"blob_bytes":6,"total_bytes":21}`,
		`{"record_count":-0,"record_json_bytes":0e5,"record_changes_count":3,"record_changes_json_bytes":4,"blob_count":5,"blob_bytes":6}`,
		`{"record_count":1.0000000000000001,"record_json_bytes":2,"record_changes_count":3,"record_changes_json_bytes":4,"blob_count":5,"blob_bytes":6}`,
		`{"record_count":4503599627370496.5,"record_json_bytes":2,"record_changes_count":3,"record_changes_json_bytes":4,"blob_count":5,"blob_bytes":6}`,
		`{"record_count":1200e-2,"record_json_bytes":2E+1,"record_changes_count":0.3e1,"record_changes_json_bytes":4,"blob_count":5,"blob_bytes":6}`,
		`{"record_count":9007199254740991,"record_json_bytes":9007199254740991,"record_changes_count":9007199254740991,"record_changes_json_bytes":9007199254740991,"blob_count":9007199254740991,"blob_bytes":9007199254740991}`,
		`{"record_count":0,"record_json_bytes":4503599627370496,"record_changes_count":0,"record_changes_json_bytes":4503599627370495,"blob_count":0,"blob_bytes":0}`,
		`{"record_count":1,"record_json_bytes":2,"record_changes_count":3,"record_changes_json_bytes":4,"blob_count":5,"blob_bytes":6,"last_record_at":"2026-01-01T00:00:00+24:00"}`,
		`{"record_count":1,"record_json_bytes":2,"record_changes_count":3,"record_changes_json_bytes":4,"blob_count":5,"blob_bytes":6,"last_record_at":"2026-01-01T00:00:00Z\u0000"}`,
		`{"record_count":1,"record_json_bytes":2,"record_changes_count":3,"record_changes_json_bytes":4,"blob_count":5,"blob_byte":6}`,
		`[]`, `null`, ``, `{`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		fig, err := retained.ParseFigures(raw)
		if err != nil {
			e, ok := httpx.As(err)
			if !ok || e.Status != 400 || e.Code != "invalid_request" || e.Message == "" {
				t.Fatalf("error %T %v: want a 400 *httpx.Error", err, err)
			}
			return
		}
		for name, v := range map[string]int64{"record_count": fig.RecordCount, "record_json_bytes": fig.RecordJSONBytes,
			"record_changes_count": fig.RecordChangesCount, "record_changes_json_bytes": fig.RecordChangesJSONBytes,
			"blob_count": fig.BlobCount, "blob_bytes": fig.BlobBytes, "total_bytes": fig.TotalBytes()} {
			if v < 0 || v >= httpx.MaxSafeInteger {
				t.Fatalf("accepted %s = %d", name, v)
			}
		}
		if fig.LastRecordAt != nil {
			var lit map[string]string
			_ = json.Unmarshal(raw, &lit) // the figures do not fit a string map; last_record_at does
			at := lit["last_record_at"]
			if m := fuzzOffsetRE.FindStringSubmatch(at); strings.Contains(at, ",") || (m != nil && (m[1] > "23" || m[2] > "59")) {
				t.Fatalf("accepted last_record_at %q: no RFC 3339 (offset beyond ±23:59 or a comma before the fraction)", at)
			}
		}
		// Exactly the integers that were sent: no fraction rounded into an integer.
		var literals map[string]json.RawMessage
		if err := json.Unmarshal(raw, &literals); err != nil {
			t.Fatalf("accepted %q: %v", raw, err)
		}
		for name, v := range map[string]int64{"record_count": fig.RecordCount, "blob_bytes": fig.BlobBytes,
			"record_json_bytes": fig.RecordJSONBytes, "record_changes_count": fig.RecordChangesCount,
			"record_changes_json_bytes": fig.RecordChangesJSONBytes, "blob_count": fig.BlobCount} {
			lit := strings.TrimSpace(string(literals[name]))
			if _, exp, ok := strings.Cut(strings.ToLower(lit), "e"); ok && len(strings.TrimLeft(exp, "+-0")) > 4 {
				continue // keep big.Rat away from 10^huge; zero is the only such value accepted
			}
			r, ok := new(big.Rat).SetString(lit)
			if !ok || !r.IsInt() || r.Num().Cmp(big.NewInt(v)) != 0 {
				t.Fatalf("%s %s accepted as %d", name, lit, v)
			}
		}
		if fig.LastRecordAt != nil {
			at, err := time.Parse("2006-01-02T15:04:05.000Z", *fig.LastRecordAt)
			if !fuzzFigureTimeRE.MatchString(*fig.LastRecordAt) || err != nil || at.Format("2006-01-02T15:04:05.000Z") != *fig.LastRecordAt {
				t.Fatalf("last_record_at stored as %q", *fig.LastRecordAt)
			}
		}
		// The stored figures, sent again, are accepted as the same figures.
		m := map[string]any{"record_count": fig.RecordCount, "record_json_bytes": fig.RecordJSONBytes,
			"record_changes_count": fig.RecordChangesCount, "record_changes_json_bytes": fig.RecordChangesJSONBytes,
			"blob_count": fig.BlobCount, "blob_bytes": fig.BlobBytes}
		if fig.LastRecordAt != nil {
			m["last_record_at"] = *fig.LastRecordAt
		}
		b, _ := json.Marshal(m)
		again, err := retained.ParseFigures(b)
		if err != nil || !reflect.DeepEqual(again, fig) {
			t.Fatalf("%s re-parses as %+v, %v; want %+v", b, again, err, fig)
		}
	})
}
