package summary

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"sync/atomic"
	"unicode/utf8"

	"connsum/modules/runs"
)

// The feed's envelope is encoded by hand, appending to one buffer sized from the previous
// encoding: no reflection, no buffer growth. The output is byte for byte what encoding/json
// writes for the same Envelope with SetEscapeHTML(false) (the fuzz and fixture tests compare
// the two); a raw JSON value that does not compact makes appendEnvelope fail, and Body then
// takes encoding/json, so an odd value is never encoded differently. A CPU profile of the
// overview before: JSON encoding 24 % of process CPU, 9 % of it growing and zeroing the buffer.

// errRawJSON reports a json.RawMessage that is not valid JSON.
var errRawJSON = errors.New("summary: raw JSON value does not compact")

// bytesPerItem is the size of an item in the last encoded envelope, to size the next buffer.
var bytesPerItem atomic.Int64

// appendEnvelope appends the JSON of env to dst.
func appendEnvelope(dst []byte, env *Envelope) ([]byte, error) {
	var err error
	dst = append(dst, `{"object":`...)
	dst = appendString(dst, env.Object)
	dst = append(dst, `,"data":`...)
	if env.Items == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '[')
		for i := range env.Items {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, err = appendItem(dst, &env.Items[i]); err != nil {
				return nil, err
			}
		}
		dst = append(dst, ']')
	}
	dst = append(dst, `,"has_more":`...)
	dst = strconv.AppendBool(dst, env.HasMore)
	dst = append(dst, `,"next_cursor":`...)
	dst = appendStringPtr(dst, env.NextCursor)
	return append(dst, '}'), nil
}

func appendItem(dst []byte, it *Item) ([]byte, error) {
	var err error
	dst = append(dst, `{"object":`...)
	dst = appendString(dst, it.Object)
	dst = append(dst, `,"connection_id":`...)
	dst = appendString(dst, it.ConnectionID)
	dst = append(dst, `,"connector_instance_id":`...)
	dst = appendString(dst, it.ConnectorInstanceID)
	dst = append(dst, `,"connector_id":`...)
	dst = appendString(dst, it.ConnectorID)
	dst = append(dst, `,"connector_display_name":`...)
	dst = appendString(dst, it.ConnectorDisplayName)
	dst = append(dst, `,"display_name":`...)
	dst = appendString(dst, it.DisplayName)
	dst = append(dst, `,"status":`...)
	dst = appendString(dst, it.Status)
	dst = append(dst, `,"revoked_at":`...)
	dst = appendStringPtr(dst, it.RevokedAt)
	dst = append(dst, `,"source_kind":`...)
	dst = appendString(dst, it.SourceKind)
	dst = append(dst, `,"created_at":`...)
	dst = appendString(dst, it.CreatedAt)
	dst = append(dst, `,"manifest_version":`...)
	dst = appendStringPtr(dst, it.ManifestVersion)
	dst = append(dst, `,"streams":`...)
	if it.Streams == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '[')
		for i, s := range it.Streams {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, s)
		}
		dst = append(dst, ']')
	}
	dst = append(dst, `,"refresh_policy":`...)
	if dst, err = appendRaw(dst, it.RefreshPolicy); err != nil {
		return nil, err
	}
	dst = append(dst, `,"total_records":`...)
	dst = strconv.AppendInt(dst, it.TotalRecords, 10)
	dst = append(dst, `,"stream_count":`...)
	dst = strconv.AppendInt(dst, int64(it.StreamCount), 10)
	dst = append(dst, `,"stream_records":`...)
	if it.StreamRecords == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '[')
		for i := range it.StreamRecords {
			s := &it.StreamRecords[i]
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"stream":`...)
			dst = appendString(dst, s.Stream)
			dst = append(dst, `,"record_count":`...)
			dst = strconv.AppendInt(dst, s.RecordCount, 10)
			dst = append(dst, `,"total_bytes":`...)
			dst = strconv.AppendInt(dst, s.TotalBytes, 10)
			dst = append(dst, `,"last_record_at":`...)
			dst = appendStringPtr(dst, s.LastRecordAt)
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	dst = append(dst, `,"retained_bytes":`...)
	if rb := it.RetainedBytes; rb == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, `{"record_json_bytes":`...)
		dst = strconv.AppendInt(dst, rb.RecordJSONBytes, 10)
		dst = append(dst, `,"record_changes_json_bytes":`...)
		dst = strconv.AppendInt(dst, rb.RecordChangesJSONBytes, 10)
		dst = append(dst, `,"blob_bytes":`...)
		dst = strconv.AppendInt(dst, rb.BlobBytes, 10)
		dst = append(dst, `,"total_bytes":`...)
		dst = strconv.AppendInt(dst, rb.TotalBytes, 10)
		dst = append(dst, '}')
	}
	dst = append(dst, `,"total_retained_bytes":`...)
	if it.TotalRetainedBytes == nil {
		dst = append(dst, "null"...)
	} else {
		dst = strconv.AppendInt(dst, *it.TotalRetainedBytes, 10)
	}
	dst = append(dst, `,"evidence":`...)
	dst = appendString(dst, string(it.Evidence))
	dst = append(dst, `,"last_run":`...)
	if dst, err = appendRun(dst, it.LastRun); err != nil {
		return nil, err
	}
	dst = append(dst, `,"last_successful_run":`...)
	if dst, err = appendRun(dst, it.LastSuccessfulRun); err != nil {
		return nil, err
	}
	dst = append(dst, `,"freshness":{"status":`...)
	dst = appendString(dst, it.Freshness.Status)
	if it.Freshness.CapturedAt != "" {
		dst = append(dst, `,"captured_at":`...)
		dst = appendString(dst, it.Freshness.CapturedAt)
	}
	if it.Freshness.LastAttemptedAt != "" {
		dst = append(dst, `,"last_attempted_at":`...)
		dst = appendString(dst, it.Freshness.LastAttemptedAt)
	}
	dst = append(dst, `},"health":{"state":`...)
	dst = appendString(dst, it.Health.State)
	dst = append(dst, `,"reason":`...)
	dst = appendString(dst, it.Health.Reason)
	return append(dst, "}}"...), nil
}

func appendRun(dst []byte, s *runs.Summary) ([]byte, error) {
	if s == nil {
		return append(dst, "null"...), nil
	}
	var err error
	dst = append(dst, `{"run_id":`...)
	dst = appendString(dst, s.RunID)
	dst = append(dst, `,"status":`...)
	dst = appendString(dst, s.Status)
	dst = append(dst, `,"started_at":`...)
	dst = appendStringPtr(dst, s.StartedAt)
	dst = append(dst, `,"finished_at":`...)
	dst = appendStringPtr(dst, s.FinishedAt)
	dst = append(dst, `,"first_at":`...)
	dst = appendString(dst, s.FirstAt)
	dst = append(dst, `,"last_at":`...)
	dst = appendString(dst, s.LastAt)
	dst = append(dst, `,"event_count":`...)
	dst = strconv.AppendInt(dst, int64(s.EventCount), 10)
	dst = append(dst, `,"failure_reason":`...)
	dst = appendStringPtr(dst, s.FailureReason)
	dst = append(dst, `,"browser_surface_status":`...)
	dst = appendStringPtr(dst, s.BrowserSurfaceStatus)
	dst = append(dst, `,"browser_surface_wait_reason":`...)
	dst = appendStringPtr(dst, s.BrowserSurfaceWaitReason)
	dst = append(dst, `,"browser_surface_profile_key":`...)
	dst = appendStringPtr(dst, s.BrowserSurfaceProfileKey)
	dst = append(dst, `,"known_gaps":`...)
	if dst, err = appendRaw(dst, s.KnownGaps); err != nil {
		return nil, err
	}
	dst = append(dst, `,"collection_facts":`...)
	if dst, err = appendRaw(dst, s.CollectionFacts); err != nil {
		return nil, err
	}
	return append(dst, '}'), nil
}

// appendRaw appends a raw JSON value as encoding/json does: null when nil, else compacted.
func appendRaw(dst []byte, raw json.RawMessage) ([]byte, error) {
	if raw == nil {
		return append(dst, "null"...), nil
	}
	if isCompact(raw) {
		return append(dst, raw...), nil
	}
	buf := bytes.NewBuffer(dst)
	if err := json.Compact(buf, raw); err != nil {
		return nil, errRawJSON
	}
	return buf.Bytes(), nil
}

// isCompact reports whether raw is a short JSON value already compact that json.Compact would
// leave alone: the stored fold values ([], {}, small objects without white space). Anything
// else goes through json.Compact, which also validates.
func isCompact(raw []byte) bool {
	switch string(raw) {
	case "[]", "{}", "null":
		return true
	}
	return false
}

func appendStringPtr(dst []byte, s *string) []byte {
	if s == nil {
		return append(dst, "null"...)
	}
	return appendString(dst, *s)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string with encoding/json's escaping when HTML escaping is
// off: '"', '\\' and control characters escaped, invalid UTF-8 as \ufffd, U+2028 and U+2029
// escaped.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// encodeEnvelope encodes env, with appendEnvelope into a buffer sized from the last envelope,
// or with encoding/json when a raw value does not compact (so that the answer is the same).
func encodeEnvelope(env *Envelope) []byte {
	est := int(bytesPerItem.Load())*(len(env.Items)+1) + 128
	out, err := appendEnvelope(make([]byte, 0, est), env)
	if err != nil {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(env) // items hold only encodable values
		return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	}
	if n := len(env.Items); n > 0 {
		bytesPerItem.Store(int64(len(out)/n + 16))
	}
	return out
}
