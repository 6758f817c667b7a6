package summary

import (
	"bytes"
	"encoding/json"
	"math/rand"
	"testing"

	"connsum/modules/runs"
)

// stdEnvelope is the reference: encoding/json without HTML escaping, as Body encoded before.
func stdEnvelope(t testing.TB, env *Envelope) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(env); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// nastyStrings are the strings whose escaping differs between encoders.
var nastyStrings = []string{"", "plain", `quote " and \ backslash`, "<b>&amp;</b>", "tab\tnew\nline\rcr\b\f",
	"\x00\x01\x1f\x7f", "é ü 日本 🎉", "\u2028 and \u2029", "bad \xff utf8 \xc3", "\xed\xa0\x80 surrogate"}

func randomItem(r *rand.Rand) Item {
	s := func() string { return nastyStrings[r.Intn(len(nastyStrings))] }
	ps := func() *string {
		if r.Intn(3) == 0 {
			return nil
		}
		v := s()
		return &v
	}
	raws := []json.RawMessage{nil, json.RawMessage(`[]`), json.RawMessage(`{}`), json.RawMessage(`null`),
		json.RawMessage(`{ "maximum_staleness_seconds" : 86400 }`), json.RawMessage("[\n \"a\", \"<&>\" ]"), json.RawMessage(`{"s":"\u2028"}`)}
	raw := func() json.RawMessage { return raws[r.Intn(len(raws))] }
	run := func() *runs.Summary {
		if r.Intn(3) == 0 {
			return nil
		}
		return &runs.Summary{RunID: s(), Status: s(), StartedAt: ps(), FinishedAt: ps(), FirstAt: s(), LastAt: s(),
			EventCount: r.Intn(1 << 20), FailureReason: ps(), BrowserSurfaceStatus: ps(), BrowserSurfaceWaitReason: ps(),
			BrowserSurfaceProfileKey: ps(), KnownGaps: raw(), CollectionFacts: raw()}
	}
	it := Item{Object: "connector_summary", ConnectionID: s(), ConnectorInstanceID: s(), ConnectorID: s(),
		ConnectorDisplayName: s(), DisplayName: s(), Status: s(), RevokedAt: ps(), SourceKind: s(), CreatedAt: s(),
		ManifestVersion: ps(), RefreshPolicy: raw(), TotalRecords: r.Int63n(1 << 53), StreamCount: r.Intn(10),
		Evidence: runs.EvidenceKind(s()), LastRun: run(), LastSuccessfulRun: run(),
		Freshness: Freshness{Status: s(), CapturedAt: s(), LastAttemptedAt: s()}, Health: Health{State: s(), Reason: s()}}
	if r.Intn(4) > 0 {
		it.Streams = []string{}
		for i := r.Intn(4); i > 0; i-- {
			it.Streams = append(it.Streams, s())
		}
	}
	if r.Intn(4) > 0 {
		it.StreamRecords = []StreamRecords{}
		for i := r.Intn(3); i > 0; i-- {
			it.StreamRecords = append(it.StreamRecords, StreamRecords{Stream: s(), RecordCount: r.Int63(), TotalBytes: -r.Int63(), LastRecordAt: ps()})
		}
	}
	if r.Intn(2) == 0 {
		total := r.Int63()
		it.RetainedBytes = &RetainedBytes{RecordJSONBytes: r.Int63(), RecordChangesJSONBytes: 0, BlobBytes: r.Int63(), TotalBytes: total}
		it.TotalRetainedBytes = &total
	}
	return it
}

// TestEncodeEnvelopeMatchesEncodingJSON: the hand-written encoder writes what encoding/json
// writes, byte for byte, for envelopes of random items over the strings and raw values whose
// encoding differs most between encoders.
func TestEncodeEnvelopeMatchesEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for n := 0; n < 300; n++ {
		env := &Envelope{Object: "list", Items: []Item{}}
		for i := r.Intn(5); i > 0; i-- {
			env.Items = append(env.Items, randomItem(r))
		}
		if r.Intn(2) == 0 {
			c := nastyStrings[r.Intn(len(nastyStrings))]
			env.HasMore, env.NextCursor = true, &c
		}
		if n == 0 {
			env.Items = nil
		}
		want := stdEnvelope(t, env)
		if got := encodeEnvelope(env); !bytes.Equal(got, want) {
			t.Fatalf("envelope %d:\n got %s\nwant %s", n, got, want)
		}
	}
}

// TestEncodeEnvelopeFallsBackOnBadRawJSON: a raw value that is not JSON makes the hand-written
// encoder fail, and the envelope is then what encoding/json makes of it (here: nothing).
func TestEncodeEnvelopeFallsBackOnBadRawJSON(t *testing.T) {
	env := &Envelope{Object: "list", Items: []Item{{RefreshPolicy: json.RawMessage(`{"a":`)}}}
	if _, err := appendEnvelope(nil, env); err == nil {
		t.Fatal("appendEnvelope accepted a raw value that is not JSON")
	}
	var buf bytes.Buffer
	_ = json.NewEncoder(&buf).Encode(env)
	if got := encodeEnvelope(env); !bytes.Equal(got, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))) {
		t.Errorf("fallback = %q, want encoding/json's %q", got, buf.Bytes())
	}
}

// FuzzAppendString: any string is escaped as encoding/json escapes it.
func FuzzAppendString(f *testing.F) {
	for _, s := range nastyStrings {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(s)
		if got, want := appendString(nil, s), bytes.TrimSuffix(buf.Bytes(), []byte("\n")); !bytes.Equal(got, want) {
			t.Fatalf("appendString(%q) = %s, want %s", s, got, want)
		}
	})
}

// BenchmarkEncodeEnvelope compares the two encoders on 1000 random items.
func BenchmarkEncodeEnvelope(b *testing.B) {
	r := rand.New(rand.NewSource(2))
	env := &Envelope{Object: "list", Items: make([]Item, 1000)}
	for i := range env.Items {
		env.Items[i] = randomItem(r)
	}
	b.Run("append", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			encodeEnvelope(env)
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			stdEnvelope(b, env)
		}
	})
}
