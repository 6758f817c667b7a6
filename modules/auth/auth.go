// Package auth is who may call the service and how browsers stay safe doing so: the owner and
// admin tokens (bearer), browser sessions stored in the database (login with the token or a
// one-time link, logout, expiry, idle timeout, admin listing and revocation), the CSRF rule for
// cookie-authenticated writes, the login rate limit and the security headers of every response.
package auth

import (
	"crypto/subtle"
	"log/slog"
	"time"
)

// Tokens are the credentials of SPEC §2.1.
type Tokens struct {
	Owner string
	Admin string // empty: admin routes answer 404
}

// CookieSecure says when the session cookie carries the Secure attribute.
type CookieSecure string

// The values of auth.cookie_secure.
const (
	// SecureAuto marks the cookie Secure when the login request came over HTTPS (TLS, or a proxy's
	// X-Forwarded-Proto: https).
	SecureAuto   CookieSecure = "auto"
	SecureAlways CookieSecure = "true"
	SecureNever  CookieSecure = "false"
)

// ParseCookieSecure validates an auth.cookie_secure value.
func ParseCookieSecure(v string) (CookieSecure, bool) {
	switch c := CookieSecure(v); c {
	case SecureAuto, SecureAlways, SecureNever:
		return c, true
	}
	return "", false
}

// Defaults of Options.
const (
	DefaultSessionTTL     = 12 * time.Hour
	DefaultSessionIdle    = time.Hour
	DefaultLinkTTL        = 10 * time.Minute
	DefaultLoginPerMinute = 10
)

// Options are the session lifetimes, the cookie policy and the login rate limit.
type Options struct {
	// SessionTTL is a session's absolute lifetime from login (auth.session_ttl).
	SessionTTL time.Duration
	// SessionIdle ends a session that made no request for that long (auth.session_idle).
	SessionIdle time.Duration
	// LinkTTL is how long a one-time login link stays valid (auth.login_link_ttl).
	LinkTTL time.Duration
	// CookieSecure is the Secure policy of the session cookie (auth.cookie_secure).
	CookieSecure CookieSecure
	// LoginPerMinute is the login failures a client may make per minute, and its burst
	// (auth.login_per_minute).
	LoginPerMinute int
	// StyleSources are the CSP sources ('sha256-…') of the inline stylesheets the pages may
	// carry; every other inline style is blocked.
	StyleSources []string
}

// WithDefaults fills every zero field with its default.
func (o Options) WithDefaults() Options {
	if o.SessionTTL <= 0 {
		o.SessionTTL = DefaultSessionTTL
	}
	if o.SessionIdle <= 0 {
		o.SessionIdle = DefaultSessionIdle
	}
	if o.LinkTTL <= 0 {
		o.LinkTTL = DefaultLinkTTL
	}
	if o.CookieSecure == "" {
		o.CookieSecure = SecureAuto
	}
	if o.LoginPerMinute <= 0 {
		o.LoginPerMinute = DefaultLoginPerMinute
	}
	return o
}

// CookieName is the browser session cookie. Its value is a random session id, never a token.
const CookieName = "connsum_session"

// Service authenticates requests (Guard), serves login, logout and the admin session routes
// (Routes), and sets the security headers (SecurityHeaders).
type Service struct {
	tokens  Tokens
	opts    Options
	store   *Store // nil: no browser sessions (bearer tokens only)
	limiter *Limiter
	log     *slog.Logger
}

// NewService returns the service. store may be nil, e.g. for a server built without a database,
// which then accepts bearer tokens only.
func NewService(tokens Tokens, opts Options, store *Store, log *slog.Logger) *Service {
	opts = opts.WithDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := time.Now
	if store != nil {
		now = store.now
	}
	return &Service{tokens: tokens, opts: opts, store: store, limiter: NewLimiter(opts.LoginPerMinute, now), log: log}
}

// equal compares a presented credential with a configured one in constant time; an unset
// credential matches nothing.
func equal(presented, want string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(presented), []byte(want)) == 1
}
