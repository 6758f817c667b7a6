package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/uptrace/bun"

	"connsum/modules/bootstrap"
)

// Store keeps browser sessions and one-time login links in the database (tables sessions and
// login_links, migration 20261202000001), so they survive restarts and hold on every replica.
// Only the SHA-256 of a cookie value or link code is stored: reading the table grants nothing.
type Store struct {
	db   *bun.DB
	now  bootstrap.Clock
	opts Options
	log  *slog.Logger
}

// NewStore returns the session store over db.
func NewStore(db *bun.DB, now bootstrap.Clock, opts Options, log *slog.Logger) *Store {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Store{db: db, now: now, opts: opts.WithDefaults(), log: log}
}

// Session is a browser session as the admin sees it: its public handle, never its secret.
type Session struct {
	ID            string `json:"id"`
	Via           string `json:"via"` // "token" or "link": how the browser logged in
	CreatedAt     string `json:"created_at"`
	LastSeenAt    string `json:"last_seen_at"`
	ExpiresAt     string `json:"expires_at"`
	IdleExpiresAt string `json:"idle_expires_at"`
	UserAgent     string `json:"user_agent"`
	ClientIP      string `json:"client_ip"`
}

// How a session was created.
const (
	ViaToken = "token"
	ViaLink  = "link"
)

type sessionRow struct {
	bun.BaseModel `bun:"table:sessions"`
	IDHash        string `bun:"id_hash,pk"`
	Handle        string `bun:"handle"`
	Via           string `bun:"via"`
	CreatedAt     string `bun:"created_at"`
	ExpiresAt     string `bun:"expires_at"`
	LastSeenAt    string `bun:"last_seen_at"`
	UserAgent     string `bun:"user_agent"`
	ClientIP      string `bun:"client_ip"`
}

type linkRow struct {
	bun.BaseModel `bun:"table:login_links"`
	IDHash        string `bun:"id_hash,pk"`
	CreatedAt     string `bun:"created_at"`
	ExpiresAt     string `bun:"expires_at"`
}

// secretLen is the length of a cookie value or link code: 32 random bytes in unpadded base64url.
const secretLen = 43

func newSecret() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

func hashSecret(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// wellFormed rejects, without a database read, anything that cannot be a secret this service
// issued (an old cookie carrying the owner token among them).
func wellFormed(s string) bool {
	if len(s) != secretLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func parseTime(s string) time.Time {
	t, err := time.Parse(bootstrap.TimeFormat, s)
	if err != nil {
		return time.Time{} // an unreadable time ends the session
	}
	return t
}

// touchEvery is how stale last_seen_at may get before a request writes it again: the idle
// timeout is then exact to within this, and a busy console writes at most once a minute.
func (s *Store) touchEvery() time.Duration {
	return min(max(s.opts.SessionIdle/10, time.Second), time.Minute)
}

func (s *Store) public(r sessionRow) Session {
	idle := parseTime(r.LastSeenAt).Add(s.opts.SessionIdle)
	if exp := parseTime(r.ExpiresAt); exp.Before(idle) {
		idle = exp
	}
	return Session{ID: r.Handle, Via: r.Via, CreatedAt: r.CreatedAt, LastSeenAt: r.LastSeenAt, ExpiresAt: r.ExpiresAt,
		IdleExpiresAt: bootstrap.FormatTime(idle), UserAgent: r.UserAgent, ClientIP: r.ClientIP}
}

func (s *Store) live(r sessionRow, now time.Time) bool {
	return now.Before(parseTime(r.ExpiresAt)) && now.Before(parseTime(r.LastSeenAt).Add(s.opts.SessionIdle))
}

// Create starts a session and returns its secret (the cookie value) and its public form.
func (s *Store) Create(ctx context.Context, via, userAgent, clientIP string) (string, Session, error) {
	var secret string
	var row sessionRow
	err := bootstrap.RunInTx(ctx, s.db, func(ctx context.Context, tx bun.Tx) error {
		var err error
		secret, row, err = s.create(ctx, tx, via, userAgent, clientIP)
		return err
	})
	if err != nil {
		return "", Session{}, err
	}
	return secret, s.public(row), nil
}

func (s *Store) create(ctx context.Context, tx bun.Tx, via, userAgent, clientIP string) (string, sessionRow, error) {
	now := s.now().UTC()
	secret, err := newSecret()
	if err != nil {
		return "", sessionRow{}, err
	}
	var h [12]byte
	if _, err := rand.Read(h[:]); err != nil {
		return "", sessionRow{}, err
	}
	row := sessionRow{IDHash: hashSecret(secret), Handle: "ses_" + hex.EncodeToString(h[:]), Via: via,
		CreatedAt: bootstrap.FormatTime(now), ExpiresAt: bootstrap.FormatTime(now.Add(s.opts.SessionTTL)),
		LastSeenAt: bootstrap.FormatTime(now), UserAgent: truncate(userAgent, 256), ClientIP: truncate(clientIP, 64)}
	if err := s.purge(ctx, tx, now); err != nil {
		return "", sessionRow{}, err
	}
	if _, err := tx.NewInsert().Model(&row).Exec(ctx); err != nil {
		return "", sessionRow{}, fmt.Errorf("auth: create session: %w", err)
	}
	return secret, row, nil
}

// purge drops the sessions and links that can no longer be used; logins call it, so the tables
// hold only what is live (plus what expired since the last login).
func (s *Store) purge(ctx context.Context, db bun.IDB, now time.Time) error {
	t := bootstrap.FormatTime(now)
	if _, err := db.NewDelete().Table("sessions").Where("expires_at <= ? OR last_seen_at <= ?", t,
		bootstrap.FormatTime(now.Add(-s.opts.SessionIdle))).Exec(ctx); err != nil {
		return fmt.Errorf("auth: purge sessions: %w", err)
	}
	if _, err := db.NewDelete().Table("login_links").Where("expires_at <= ?", t).Exec(ctx); err != nil {
		return fmt.Errorf("auth: purge login links: %w", err)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// Lookup returns the live session whose cookie value is secret, or nil when there is none (never
// issued, logged out, revoked, expired or idle too long). A database error is returned as is, so
// an unavailable database answers 503, not 401. A request refreshes last_seen_at at most every
// touchEvery; a failed refresh does not fail the request (a read-only database still serves reads).
func (s *Store) Lookup(ctx context.Context, secret string) (*Session, error) {
	if !wellFormed(secret) {
		return nil, nil
	}
	var row sessionRow
	err := s.db.NewSelect().Model(&row).Where("id_hash = ?", hashSecret(secret)).Limit(1).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("auth: session: %w", err)
	}
	now := s.now().UTC()
	if !s.live(row, now) {
		return nil, nil
	}
	if now.Sub(parseTime(row.LastSeenAt)) >= s.touchEvery() {
		seen := bootstrap.FormatTime(now)
		// Best effort, and never long: a request must not wait behind a queue of writers (on
		// SQLite writes take turns) only to move last_seen_at.
		tctx, cancel := context.WithTimeout(ctx, refreshWait)
		_, err := s.write(tctx, func(ctx context.Context, tx bun.Tx) (sql.Result, error) {
			return tx.NewUpdate().Table("sessions").Set("last_seen_at = ?", seen).
				Where("id_hash = ? AND last_seen_at < ?", row.IDHash, seen).Exec(ctx)
		})
		cancel()
		if err != nil {
			s.log.Warn("auth: refresh session", "session", row.Handle, "err", err)
		} else {
			row.LastSeenAt = seen
		}
	}
	sess := s.public(row)
	return &sess, nil
}

// Alive reports whether the session whose cookie value is secret is still live, without
// refreshing it: what a long-lived answer (the change stream) asks now and then, so that a logout,
// a revocation or an expiry ends it, while an open stream alone does not keep a session from
// idling out.
func (s *Store) Alive(ctx context.Context, secret string) (bool, error) {
	if !wellFormed(secret) {
		return false, nil
	}
	var row sessionRow
	err := s.db.NewSelect().Model(&row).Where("id_hash = ?", hashSecret(secret)).Limit(1).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("auth: session: %w", err)
	}
	return s.live(row, s.now().UTC()), nil
}

// End deletes the session whose cookie value is secret (logout). Ending an unknown session is
// not an error.
func (s *Store) End(ctx context.Context, secret string) error {
	if !wellFormed(secret) {
		return nil
	}
	if _, err := s.write(ctx, func(ctx context.Context, tx bun.Tx) (sql.Result, error) {
		return tx.NewDelete().Table("sessions").Where("id_hash = ?", hashSecret(secret)).Exec(ctx)
	}); err != nil {
		return fmt.Errorf("auth: end session: %w", err)
	}
	return nil
}

// List returns the live sessions, newest first.
func (s *Store) List(ctx context.Context) ([]Session, error) {
	now := s.now().UTC()
	var rows []sessionRow
	if err := s.db.NewSelect().Model(&rows).Where("expires_at > ?", bootstrap.FormatTime(now)).
		OrderExpr("created_at DESC, handle").Scan(ctx); err != nil {
		return nil, fmt.Errorf("auth: list sessions: %w", err)
	}
	out := []Session{}
	for _, r := range rows {
		if s.live(r, now) {
			out = append(out, s.public(r))
		}
	}
	return out, nil
}

// Revoke ends the session with the public id handle and reports whether there was one.
func (s *Store) Revoke(ctx context.Context, handle string) (bool, error) {
	n, err := s.write(ctx, func(ctx context.Context, tx bun.Tx) (sql.Result, error) {
		return tx.NewDelete().Table("sessions").Where("handle = ?", handle).Exec(ctx)
	})
	if err != nil {
		return false, fmt.Errorf("auth: revoke session: %w", err)
	}
	return n > 0, nil
}

// RevokeAll ends every session and reports how many there were.
func (s *Store) RevokeAll(ctx context.Context) (int, error) {
	n, err := s.write(ctx, func(ctx context.Context, tx bun.Tx) (sql.Result, error) {
		return tx.NewDelete().Table("sessions").Where("1 = 1").Exec(ctx)
	})
	if err != nil {
		return 0, fmt.Errorf("auth: revoke sessions: %w", err)
	}
	return int(n), nil
}

// refreshWait bounds the best-effort refresh of a session's last_seen_at.
const refreshWait = 250 * time.Millisecond

// write runs one statement in a write transaction (bootstrap.RunInTx: retried on serialization
// failures, and on SQLite in the process's write queue) and returns the rows it affected.
func (s *Store) write(ctx context.Context, stmt func(ctx context.Context, tx bun.Tx) (sql.Result, error)) (int64, error) {
	var n int64
	err := bootstrap.RunInTx(ctx, s.db, func(ctx context.Context, tx bun.Tx) error {
		res, err := stmt(ctx, tx)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}

// IssueLink stores a one-time login link and returns its code and expiry.
func (s *Store) IssueLink(ctx context.Context) (string, time.Time, error) {
	now := s.now().UTC()
	code, err := newSecret()
	if err != nil {
		return "", time.Time{}, err
	}
	exp := now.Add(s.opts.LinkTTL)
	row := linkRow{IDHash: hashSecret(code), CreatedAt: bootstrap.FormatTime(now), ExpiresAt: bootstrap.FormatTime(exp)}
	err = bootstrap.RunInTx(ctx, s.db, func(ctx context.Context, tx bun.Tx) error {
		if err := s.purge(ctx, tx, now); err != nil {
			return err
		}
		_, err := tx.NewInsert().Model(&row).Exec(ctx)
		return err
	})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("auth: issue login link: %w", err)
	}
	return code, exp, nil
}

// ConsumeLink uses up the one-time link code and starts a session in the same transaction. ok is
// false when the code was never issued, has expired or was used already: deleting the link row
// is the use, so of two concurrent uses exactly one finds it.
func (s *Store) ConsumeLink(ctx context.Context, code, userAgent, clientIP string) (secret string, sess Session, ok bool, err error) {
	if !wellFormed(code) {
		return "", Session{}, false, nil
	}
	var row sessionRow
	err = bootstrap.RunInTx(ctx, s.db, func(ctx context.Context, tx bun.Tx) error {
		ok = false
		res, err := tx.NewDelete().Table("login_links").Where("id_hash = ? AND expires_at > ?", hashSecret(code),
			bootstrap.FormatTime(s.now().UTC())).Exec(ctx)
		if err != nil {
			return fmt.Errorf("auth: use login link: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		ok = true
		secret, row, err = s.create(ctx, tx, ViaLink, userAgent, clientIP)
		return err
	})
	if err != nil || !ok {
		return "", Session{}, false, err
	}
	return secret, s.public(row), true, nil
}
