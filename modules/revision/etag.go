package revision

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"connsum/modules/bootstrap"
)

// Tag is a feed answer's strong entity tag (SPEC §2.7): the revision the answer was computed at
// (or later: a read takes the revision before it projects, so the answer is never older than its
// tag), the last moment at which no time-dependent field of it changes (zero: none can), and a
// digest of the query and the settings that shape the answer. Equal tags mean identical bytes:
// the answer is a function of the database at that revision, the query and the time, and it does
// not change with time until ValidUntil.
type Tag struct {
	Revision   int64
	ValidUntil time.Time
	Query      string
}

// QueryDigest is the Query part of a Tag: a short digest of every part that shapes an answer
// (the route, its normalised query, the settings that change items).
func QueryDigest(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s\n", len(p), p)
	}
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:9])
}

// String renders the tag as an ETag header value: "r<revision>.<valid-until unix ms>.<digest>"
// (0 when nothing changes with time), quoted.
func (t Tag) String() string {
	var until int64
	if !t.ValidUntil.IsZero() {
		until = t.ValidUntil.UnixMilli()
	}
	return `"r` + strconv.FormatInt(t.Revision, 10) + "." + strconv.FormatInt(until, 10) + "." + t.Query + `"`
}

// parseTag reads one entity tag made by String (weak or strong: If-None-Match compares weakly,
// RFC 9110 §13.1.2).
func parseTag(s string) (Tag, bool) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "W/")
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' || !strings.HasPrefix(s, `"r`) {
		return Tag{}, false
	}
	parts := strings.Split(s[2:len(s)-1], ".")
	if len(parts) != 3 {
		return Tag{}, false
	}
	rev, err1 := strconv.ParseInt(parts[0], 10, 64)
	until, err2 := strconv.ParseInt(parts[1], 10, 64)
	if err1 != nil || err2 != nil || rev < 0 || until < 0 || parts[2] == "" {
		return Tag{}, false
	}
	t := Tag{Revision: rev, Query: parts[2]}
	if until > 0 {
		t.ValidUntil = time.UnixMilli(until)
	}
	return t, true
}

// NotModified decides a conditional GET: whether one of the tags of an If-None-Match header is
// for this query (digest), at the current revision, and still valid at now; it returns that tag
// (a 304 repeats it). "*" never matches: it is for writes. A malformed header matches nothing,
// so the client gets the full answer.
func NotModified(ifNoneMatch string, current int64, digest string, now time.Time) (string, bool) {
	if len(ifNoneMatch) > 4096 {
		return "", false
	}
	for _, s := range strings.Split(ifNoneMatch, ",") {
		t, ok := parseTag(s)
		if ok && t.Query == digest && t.Revision == current && (t.ValidUntil.IsZero() || !now.After(t.ValidUntil)) {
			return t.String(), true
		}
	}
	return "", false
}

// Reader reads the current revision of one database; it is the feed's Revisions port.
type Reader struct{ DB bun.IDB }

// Current implements the port: revision.Current over r.DB.
func (r Reader) Current(ctx context.Context) (int64, error) { return Current(ctx, r.DB) }

// QueueCurrent implements the port: revision.QueueCurrent over r.DB.
func (r Reader) QueueCurrent(b *bootstrap.Batch, rev *int64) { QueueCurrent(b, r.DB, rev) }

// Since implements the change stream's port: revision.Since over r.DB.
func (r Reader) Since(ctx context.Context, after int64) (Change, int64, error) {
	return Since(ctx, r.DB, after)
}

// ChangedAt implements the change stream's port: revision.ChangedAt over r.DB.
func (r Reader) ChangedAt(ctx context.Context, rev int64) (time.Time, error) {
	return ChangedAt(ctx, r.DB, rev)
}

// Epoch implements the feed's port: revision.Epoch over r.DB.
func (r Reader) Epoch(ctx context.Context) (string, error) { return Epoch(ctx, r.DB) }
