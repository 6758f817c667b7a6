package summary

import (
	"sort"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"connsum/modules/httpx"
	"connsum/modules/revision"
)

// answerVersion changes when the bytes of an answer change for the same data (a new field, a new
// encoding), so a tag from an older build never matches.
const answerVersion = "feed.v1"

// Digest is the query part of a feed answer's entity tag: the database's epoch, the route, the
// query parameters in a fixed order, the settings that change items (the overview's evidence
// kind, runs.stale_after) and answerVersion. Two requests with the same digest get the same bytes
// at the same revision and time. Without the epoch (the database did not answer) it is a digest
// no tag carries, so nothing is 304 and the read that follows reports the database's error.
func (f *Feed) Digest(c *fiber.Ctx) string {
	epoch, err := f.dbEpoch(c.UserContext())
	if err != nil {
		epoch = "unknown"
	}
	args := httpx.QueryArgs(c)
	sort.Slice(args, func(i, j int) bool {
		if args[i][0] != args[j][0] {
			return args[i][0] < args[j][0]
		}
		return args[i][1] < args[j][1]
	})
	parts := make([]string, 0, 2*len(args)+3)
	parts = append(parts, answerVersion, epoch, string(f.projector.OverviewKind()), f.shape, c.Path())
	for _, kv := range args {
		parts = append(parts, kv[0], kv[1])
	}
	return revision.QueryDigest(parts...)
}

// NotModified answers a conditional GET before anything is computed: when the request's
// If-None-Match names the answer the route would give now (same digest, current revision, not
// past its time), it writes 304 with that tag and reports true. It costs one statement (the
// revision), none without If-None-Match.
func (f *Feed) NotModified(c *fiber.Ctx, digest string) (bool, error) {
	inm := c.Get(fiber.HeaderIfNoneMatch)
	if inm == "" {
		return false, nil
	}
	start := time.Now()
	rev, err := f.Revision(c.UserContext())
	if err != nil {
		return false, err
	}
	tag, ok := revision.NotModified(inm, rev, digest, f.Now())
	if !ok {
		return false, nil
	}
	c.Set(fiber.HeaderETag, tag)
	c.Set(fiber.HeaderCacheControl, cacheControl)
	c.Set("Server-Timing", "revision;dur="+millis(time.Since(start)))
	c.Status(fiber.StatusNotModified)
	return true, nil
}

// cacheControl lets a browser keep an answer but ask again every time (the ETag makes asking
// cheap); private: answers are the owner's.
const cacheControl = "private, no-cache"

// SetETag tags an answer computed at rev that stays true until validUntil (zero: no time limit).
func SetETag(c *fiber.Ctx, rev int64, validUntil time.Time, digest string) {
	c.Set(fiber.HeaderETag, revision.Tag{Revision: rev, ValidUntil: validUntil, Query: digest}.String())
	c.Set(fiber.HeaderCacheControl, cacheControl)
}

// millis renders d as milliseconds for Server-Timing.
func millis(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 3, 64)
}
