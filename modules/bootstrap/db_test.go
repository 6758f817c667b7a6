package bootstrap

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestPostgresConfig: every PostgreSQL connection keeps no prepared statement per SQL text, names
// itself, carries the pool's session limits and a connect timeout; what the URL sets explicitly
// wins.
func TestPostgresConfig(t *testing.T) {
	pool := PoolOptions{StatementTimeout: 10 * time.Second, IdleInTransactionTimeout: 15 * time.Second, ConnectTimeout: 3 * time.Second}
	cfg, err := postgresConfig("postgres://u@127.0.0.1:5432/db?sslmode=disable", pool)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DefaultQueryExecMode != QueryExecMode || QueryExecMode == pgx.QueryExecModeCacheStatement || cfg.StatementCacheCapacity != 0 {
		t.Errorf("exec mode %v, statement cache %d: want %v and no cache", cfg.DefaultQueryExecMode, cfg.StatementCacheCapacity, QueryExecMode)
	}
	want := map[string]string{"application_name": ApplicationName, "statement_timeout": "10000", "idle_in_transaction_session_timeout": "15000"}
	for k, v := range want {
		if cfg.RuntimeParams[k] != v {
			t.Errorf("runtime parameter %s = %q, want %q", k, cfg.RuntimeParams[k], v)
		}
	}
	if cfg.ConnectTimeout != 3*time.Second {
		t.Errorf("connect timeout %s, want 3s", cfg.ConnectTimeout)
	}

	// The maintenance commands' zero options: no session limits, the default connect timeout.
	cfg, err = postgresConfig("postgres://u@127.0.0.1/db", PoolOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cfg.RuntimeParams["statement_timeout"]; ok || cfg.ConnectTimeout != DefaultConnectTimeout {
		t.Errorf("zero options: runtime parameters %v, connect timeout %s", cfg.RuntimeParams, cfg.ConnectTimeout)
	}
	// A sub-millisecond limit stays a limit (0 would mean none).
	if got := milliseconds(500 * time.Microsecond); got != "1" {
		t.Errorf("milliseconds(0.5ms) = %q, want 1", got)
	}

	cfg, err = postgresConfig("postgres://u@127.0.0.1/db?application_name=other&statement_timeout=250&connect_timeout=7&default_query_exec_mode=exec", pool)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RuntimeParams["application_name"] != "other" || cfg.RuntimeParams["statement_timeout"] != "250" ||
		cfg.ConnectTimeout != 7*time.Second || cfg.DefaultQueryExecMode != pgx.QueryExecModeExec {
		t.Errorf("the URL's own values must win: %v, connect %s, mode %v", cfg.RuntimeParams, cfg.ConnectTimeout, cfg.DefaultQueryExecMode)
	}

	// An explicit cache_statement keeps pgx's statement cache, without which that mode fails.
	cfg, err = postgresConfig("postgres://u@127.0.0.1/db?default_query_exec_mode=cache_statement", pool)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DefaultQueryExecMode != pgx.QueryExecModeCacheStatement || cfg.StatementCacheCapacity == 0 {
		t.Errorf("explicit cache_statement: mode %v, statement cache %d", cfg.DefaultQueryExecMode, cfg.StatementCacheCapacity)
	}

	for _, bad := range []string{"postgres://u@127.0.0.1:notaport/db", "postgres://u@h/db?sslmode=sometimes", "postgres://u@h/db?connect_timeout=soon"} {
		if _, _, err := ParseURL(bad); err == nil {
			t.Errorf("ParseURL(%q) accepted it", bad)
		}
	}
}

// TestRetryableErrorsAreUnavailable: a serialization failure or deadlock that outlasted the
// transaction retries answers 503 (the client may retry), never 500.
func TestRetryableErrorsAreUnavailable(t *testing.T) {
	for _, code := range []string{"40001", "40P01"} {
		err := fmt.Errorf("runs: append batch: %w", &pgconn.PgError{Code: code})
		if !IsRetryable(err) || !IsUnavailable(err) {
			t.Errorf("SQLSTATE %s: retryable %v, unavailable %v", code, IsRetryable(err), IsUnavailable(err))
		}
	}
	if IsRetryable(&pgconn.PgError{Code: "23505"}) {
		t.Error("a unique violation is not retried")
	}
}
