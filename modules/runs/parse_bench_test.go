package runs_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"connsum/modules/runs"
)

// benchBody is a POST /_ref/spine/events body of n events shaped like `connsum bench api`'s
// (runs of five events naming their connection, a small data object).
func benchBody(n int) []byte {
	var sb strings.Builder
	sb.WriteString(`{"events":[`)
	at := time.Date(2026, 11, 20, 8, 0, 0, 123456789, time.UTC).Format(time.RFC3339Nano)
	for i := 0; i < n; i++ {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"event_id":"bench_%d","event_type":"run.progress","occurred_at":"%s","run_id":"bench_r%d","connection_id":"cin_g","status":"running","data":{"records":%d}}`,
			i, at, i/5, i)
	}
	sb.WriteString(`]}`)
	return []byte(sb.String())
}

// BenchmarkParseBatch1000 measures the request-side validation of a batch of 1000 events (the
// part of an HTTP ingest before the store). Report: events/s.
func BenchmarkParseBatch1000(b *testing.B) {
	body := benchBody(1000)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for n := 0; n < b.N; n++ {
		if _, err := runs.ParseBatch(body, runs.MaxBatchEvents); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
}
