package app

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"connsum/modules/bootstrap"
	"connsum/modules/live"
	"connsum/modules/runs"
	"connsum/modules/summary"
)

// Config is the service configuration, layered: built-in defaults → YAML file → CONNSUM_*
// environment variables → flags.
type Config struct {
	HTTPAddr         string
	HTTPBodyLimit    int
	HTTPReadTimeout  time.Duration
	HTTPWriteTimeout time.Duration
	HTTPIdleTimeout  time.Duration
	ShutdownTimeout  time.Duration
	DBURL            string
	DBAutoMigrate    bool
	DBMaxOpenConns   int
	// DBRequestTimeout is the deadline on each request's context, so every database call the
	// request makes (waiting for a pooled connection, connecting, every statement) ends by it.
	DBRequestTimeout time.Duration
	// DBStatementTimeout is PostgreSQL's statement_timeout on every pooled connection (0: the
	// server's setting): the server's own bound, which also holds when the client is cut off.
	DBStatementTimeout time.Duration
	// DBConnectTimeout bounds the opening of one new PostgreSQL connection.
	DBConnectTimeout time.Duration
	DataDir          string
	OwnerToken       string
	AdminToken       string
	CacheTTL         time.Duration
	CacheSQLite      bool
	CacheMaxEntries  int
	// Live holds the change stream's keys (live.max_subscribers …).
	Live            live.Options
	RunsPageSize    int
	RunsStaleAfter  time.Duration
	RunsEvidence    string
	IngestMaxEvents int
	LogLevel        string
	// Auth holds the browser-session keys (auth.session_ttl …, see authconfig.go).
	Auth AuthConfig
	// Sources names where each key's value came from ("default", a file, an env var, "flag"),
	// so a start-up failure can name the key and its origin.
	Sources map[string]string
}

// setting is one config key: its default, its parser and where it lands in Config.
type setting struct {
	key, def string
	set      func(c *Config, v string) error
}

func str(dst func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error { *dst(c) = v; return nil }
}

func duration(dst func(*Config) *time.Duration, minimum time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		if v == "0" {
			*dst(c) = 0
			return nil
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < minimum {
			return fmt.Errorf("must be a duration like 5s or 30m (at least %s)", minimum)
		}
		*dst(c) = d
		return nil
	}
}

// timeout is a duration that cannot be switched off: "0" is refused like any value below minimum.
func timeout(dst func(*Config) *time.Duration, minimum time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < minimum {
			return fmt.Errorf("must be a duration like 500ms or 15s (at least %s; it cannot be switched off)", minimum)
		}
		*dst(c) = d
		return nil
	}
}

func integer(dst func(*Config) *int, lo, hi int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			return fmt.Errorf("must be an integer from %d to %d", lo, hi)
		}
		*dst(c) = n
		return nil
	}
}

func boolean(dst func(*Config) *bool) func(*Config, string) error {
	return func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("must be true or false")
		}
		*dst(c) = b
		return nil
	}
}

// settings is the one list of config keys; env names and docs derive from it.
var settings = []setting{
	{"http.addr", "127.0.0.1:7780", str(func(c *Config) *string { return &c.HTTPAddr })},
	{"http.body_limit", "8388608", integer(func(c *Config) *int { return &c.HTTPBodyLimit }, 1024, 64<<20)},
	{"http.read_timeout", "30s", duration(func(c *Config) *time.Duration { return &c.HTTPReadTimeout }, time.Second)},
	{"http.write_timeout", "60s", duration(func(c *Config) *time.Duration { return &c.HTTPWriteTimeout }, time.Second)},
	{"http.idle_timeout", "120s", duration(func(c *Config) *time.Duration { return &c.HTTPIdleTimeout }, time.Second)},
	{"http.shutdown_timeout", "10s", duration(func(c *Config) *time.Duration { return &c.ShutdownTimeout }, time.Second)},
	{"db.url", "sqlite:./data/connsum.db", str(func(c *Config) *string { return &c.DBURL })},
	{"db.auto_migrate", "true", boolean(func(c *Config) *bool { return &c.DBAutoMigrate })},
	{"db.max_open_conns", "16", integer(func(c *Config) *int { return &c.DBMaxOpenConns }, 1, 1000)},
	// The request deadline is above the statement timeout so that a statement the server cancels
	// is told apart (SQLSTATE 57014 in the log) from a request that waited on the network, and
	// above SQLite's 10 s busy timeout so that a lock wait ends with SQLITE_BUSY first; a batch
	// of 5000 events takes well under a second.
	{"db.request_timeout", "15s", timeout(func(c *Config) *time.Duration { return &c.DBRequestTimeout }, 10*time.Millisecond)},
	{"db.statement_timeout", "10s", duration(func(c *Config) *time.Duration { return &c.DBStatementTimeout }, time.Millisecond)},
	{"db.connect_timeout", bootstrap.DefaultConnectTimeout.String(), timeout(func(c *Config) *time.Duration { return &c.DBConnectTimeout }, 10*time.Millisecond)},
	{"data.dir", "", str(func(c *Config) *string { return &c.DataDir })},
	{"auth.owner_token", "", str(func(c *Config) *string { return &c.OwnerToken })},
	{"auth.admin_token", "", str(func(c *Config) *string { return &c.AdminToken })},
	{"auth.session_ttl", "12h", timeout(func(c *Config) *time.Duration { return &c.Auth.SessionTTL }, time.Minute)},
	{"auth.session_idle", "1h", timeout(func(c *Config) *time.Duration { return &c.Auth.SessionIdle }, time.Minute)},
	{"auth.login_link_ttl", "10m", timeout(func(c *Config) *time.Duration { return &c.Auth.LinkTTL }, 10*time.Second)},
	{"auth.cookie_secure", "auto", cookieSecure(func(c *Config) *string { return &c.Auth.CookieSecure })},
	{"auth.login_per_minute", "10", integer(func(c *Config) *int { return &c.Auth.LoginPerMinute }, 1, 10000)},
	{"summary.cache.ttl", "5s", duration(func(c *Config) *time.Duration { return &c.CacheTTL }, time.Millisecond)},
	{"summary.cache.sqlite", "false", boolean(func(c *Config) *bool { return &c.CacheSQLite })},
	{"summary.cache.max_entries", strconv.Itoa(summary.DefaultCacheMaxEntries), integer(func(c *Config) *int { return &c.CacheMaxEntries }, 1, 1000000)},
	{"runs.page_size", strconv.Itoa(runs.DefaultPageSize), integer(func(c *Config) *int { return &c.RunsPageSize }, 1, 10000)},
	{"runs.stale_after", runs.DefaultStaleAfter.String(), duration(func(c *Config) *time.Duration { return &c.RunsStaleAfter }, time.Second)},
	{"runs.evidence", string(runs.SourceReadModel), str(func(c *Config) *string { return &c.RunsEvidence })},
	{"ingest.max_batch_events", strconv.Itoa(runs.DefaultMaxBatchEvents), integer(func(c *Config) *int { return &c.IngestMaxEvents }, 1, runs.MaxBatchEvents)},
	{"live.max_subscribers", strconv.Itoa(live.DefaultMaxSubscribers), integer(func(c *Config) *int { return &c.Live.MaxSubscribers }, 1, 100000)},
	{"live.queue_length", strconv.Itoa(live.DefaultQueueLength), integer(func(c *Config) *int { return &c.Live.QueueLength }, 16, 1000000)},
	{"live.heartbeat", live.DefaultHeartbeat.String(), timeout(func(c *Config) *time.Duration { return &c.Live.Heartbeat }, 100*time.Millisecond)},
	{"live.poll_interval", live.DefaultPollInterval.String(), timeout(func(c *Config) *time.Duration { return &c.Live.PollInterval }, 10*time.Millisecond)},
	{"log.level", "info", str(func(c *Config) *string { return &c.LogLevel })},
}

// EnvName is the environment variable of a config key: summary.cache.ttl → CONNSUM_SUMMARY_CACHE_TTL.
func EnvName(key string) string {
	return "CONNSUM_" + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(key))
}

// ConfigError names the key at fault; the process prints it as its one line and stops.
type ConfigError struct{ Key, Source, Msg string }

func (e *ConfigError) Error() string {
	return fmt.Sprintf("invalid configuration: %s (from %s): %s", e.Key, e.Source, e.Msg)
}

// LoadConfig layers defaults, the YAML file (explicit path, or configs/default.yaml when present),
// the environment and flag values (already keyed by config key).
func LoadConfig(file string, explicit bool, env func(string) (string, bool), flags map[string]string) (*Config, error) {
	values := map[string]string{}
	source := map[string]string{}
	known := map[string]bool{}
	for _, s := range settings {
		values[s.key], source[s.key], known[s.key] = s.def, "default", true
	}
	if file != "" {
		raw, err := os.ReadFile(file)
		switch {
		case err == nil:
			var tree map[string]any
			if err := yaml.Unmarshal(raw, &tree); err != nil {
				return nil, &ConfigError{Key: "--config", Source: file, Msg: "not valid YAML: " + err.Error()}
			}
			flat := map[string]string{}
			flatten("", tree, flat)
			for k, v := range flat {
				if !known[k] {
					return nil, &ConfigError{Key: k, Source: file, Msg: "unknown key"}
				}
				values[k], source[k] = v, file
			}
		case explicit || !os.IsNotExist(err):
			return nil, &ConfigError{Key: "--config", Source: file, Msg: err.Error()}
		}
	}
	for _, s := range settings {
		if v, ok := env(EnvName(s.key)); ok {
			values[s.key], source[s.key] = v, EnvName(s.key)
		}
	}
	for k, v := range flags {
		values[k], source[k] = v, "flag"
	}
	c := &Config{Sources: source}
	for _, s := range settings {
		if err := s.set(c, strings.TrimSpace(values[s.key])); err != nil {
			return nil, &ConfigError{Key: s.key, Source: source[s.key], Msg: err.Error()}
		}
	}
	if _, _, err := bootstrap.ParseURL(c.DBURL); err != nil {
		return nil, &ConfigError{Key: "db.url", Source: source["db.url"], Msg: err.Error()}
	}
	if c.OwnerToken != "" && len(c.OwnerToken) < 16 {
		return nil, &ConfigError{Key: "auth.owner_token", Source: source["auth.owner_token"], Msg: "must be at least 16 characters"}
	}
	if c.AdminToken != "" && (len(c.AdminToken) < 16 || c.AdminToken == c.OwnerToken) {
		return nil, &ConfigError{Key: "auth.admin_token", Source: source["auth.admin_token"], Msg: "must be at least 16 characters and differ from the owner token"}
	}
	if _, err := runs.ParseSource(c.RunsEvidence); err != nil {
		return nil, &ConfigError{Key: "runs.evidence", Source: source["runs.evidence"], Msg: err.Error()}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return nil, &ConfigError{Key: "log.level", Source: source["log.level"], Msg: "must be debug, info, warn or error"}
	}
	if c.DataDir == "" {
		c.DataDir = "./data"
		if d, path, _ := bootstrap.ParseURL(c.DBURL); d == bootstrap.SQLite {
			c.DataDir = filepath.Dir(path)
		}
	}
	return c, nil
}

func flatten(prefix string, v any, out map[string]string) {
	switch t := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			flatten(p, t[k], out)
		}
	case nil:
		out[prefix] = ""
	default:
		out[prefix] = fmt.Sprint(t)
	}
}
