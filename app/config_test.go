package app

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connsum/modules/bootstrap/dbtest"
)

// envMap turns a map into LoadConfig's environment lookup.
func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func writeYAML(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "connsum.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := LoadConfig("", false, noEnv, nil)
	if err != nil {
		t.Fatal(err)
	}
	// SPEC §5's defaults.
	if cfg.HTTPAddr != "127.0.0.1:7780" || cfg.DBURL != "sqlite:./data/connsum.db" || !cfg.DBAutoMigrate ||
		cfg.OwnerToken != "" || cfg.AdminToken != "" || cfg.CacheTTL != 5*time.Second || cfg.CacheSQLite ||
		cfg.RunsPageSize != 64 || cfg.RunsStaleAfter != 30*time.Minute {
		t.Errorf("defaults = %+v", cfg)
	}
	if cfg.HTTPBodyLimit != 8<<20 || cfg.IngestMaxEvents != 5000 {
		t.Errorf("request limits = %d bytes, %d events; SPEC §2.2 says 8 MiB and 5000", cfg.HTTPBodyLimit, cfg.IngestMaxEvents)
	}
	if filepath.Clean(cfg.DataDir) != "data" {
		t.Errorf("data dir = %q, want the SQLite file's directory ./data", cfg.DataDir)
	}
	// A missing default file (not given explicitly) is no error.
	if _, err := LoadConfig(filepath.Join(t.TempDir(), "absent.yaml"), false, noEnv, nil); err != nil {
		t.Errorf("missing implicit config file: %v", err)
	}
}

func TestConfigLayering(t *testing.T) {
	file := writeYAML(t, "summary:\n  cache:\n    ttl: 7s\nruns:\n  page_size: 32\ndb:\n  url: sqlite:/tmp/from-yaml.db\n")

	cfg, err := LoadConfig(file, true, noEnv, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CacheTTL != 7*time.Second || cfg.RunsPageSize != 32 || cfg.DBURL != "sqlite:/tmp/from-yaml.db" {
		t.Errorf("YAML over defaults: %+v", cfg)
	}
	if cfg.DataDir != "/tmp" {
		t.Errorf("data dir = %q, want the SQLite file's directory", cfg.DataDir)
	}

	env := envMap(map[string]string{"CONNSUM_SUMMARY_CACHE_TTL": "9s", "CONNSUM_DB_URL": "postgres://u@h/env"})
	cfg, err = LoadConfig(file, true, env, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CacheTTL != 9*time.Second || cfg.DBURL != "postgres://u@h/env" || cfg.RunsPageSize != 32 {
		t.Errorf("env over YAML: ttl %s db %s page %d", cfg.CacheTTL, cfg.DBURL, cfg.RunsPageSize)
	}

	cfg, err = LoadConfig(file, true, env, map[string]string{"db.url": "sqlite:/tmp/flag.db", "http.addr": "0.0.0.0:9000"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DBURL != "sqlite:/tmp/flag.db" || cfg.HTTPAddr != "0.0.0.0:9000" || cfg.CacheTTL != 9*time.Second {
		t.Errorf("flags over env: db %s addr %s ttl %s", cfg.DBURL, cfg.HTTPAddr, cfg.CacheTTL)
	}

	cfg, err = LoadConfig("", false, envMap(map[string]string{"CONNSUM_SUMMARY_CACHE_TTL": "0"}), nil)
	if err != nil || cfg.CacheTTL != 0 {
		t.Errorf("ttl 0 (disables the cache) = %v, %v", cfg, err)
	}
}

func TestEveryDocumentedKeyHasItsEnvironmentVariable(t *testing.T) {
	// SPEC §5's table: key, environment variable, a non-default value, and where it lands.
	cases := []struct {
		key, env, value string
		got             func(*Config) any
		want            any
	}{
		{"http.addr", "CONNSUM_HTTP_ADDR", "127.0.0.1:9999", func(c *Config) any { return c.HTTPAddr }, "127.0.0.1:9999"},
		{"db.url", "CONNSUM_DB_URL", "postgres://postgres@127.0.0.1:5432/x", func(c *Config) any { return c.DBURL }, "postgres://postgres@127.0.0.1:5432/x"},
		{"db.auto_migrate", "CONNSUM_DB_AUTO_MIGRATE", "false", func(c *Config) any { return c.DBAutoMigrate }, false},
		{"auth.owner_token", "CONNSUM_AUTH_OWNER_TOKEN", testOwnerToken, func(c *Config) any { return c.OwnerToken }, testOwnerToken},
		{"auth.admin_token", "CONNSUM_AUTH_ADMIN_TOKEN", testAdminToken, func(c *Config) any { return c.AdminToken }, testAdminToken},
		{"summary.cache.ttl", "CONNSUM_SUMMARY_CACHE_TTL", "250ms", func(c *Config) any { return c.CacheTTL }, 250 * time.Millisecond},
		{"summary.cache.sqlite", "CONNSUM_SUMMARY_CACHE_SQLITE", "true", func(c *Config) any { return c.CacheSQLite }, true},
		{"runs.page_size", "CONNSUM_RUNS_PAGE_SIZE", "128", func(c *Config) any { return c.RunsPageSize }, 128},
		{"runs.stale_after", "CONNSUM_RUNS_STALE_AFTER", "2h", func(c *Config) any { return c.RunsStaleAfter }, 2 * time.Hour},
	}
	for _, c := range cases {
		if EnvName(c.key) != c.env {
			t.Errorf("EnvName(%s) = %s, want %s", c.key, EnvName(c.key), c.env)
		}
		cfg, err := LoadConfig("", false, envMap(map[string]string{c.env: c.value}), nil)
		if err != nil {
			t.Errorf("%s=%s: %v", c.env, c.value, err)
			continue
		}
		if got := c.got(cfg); got != c.want {
			t.Errorf("%s=%s gives %v, want %v", c.env, c.value, got, c.want)
		}
	}
}

func TestInvalidConfigNamesTheKey(t *testing.T) {
	cases := []struct {
		name  string
		file  string // YAML text, "" for none
		env   map[string]string
		flags map[string]string
		key   string
	}{
		{name: "page size 0 from env", env: map[string]string{"CONNSUM_RUNS_PAGE_SIZE": "0"}, key: "runs.page_size"},
		{name: "page size 0 from YAML", file: "runs:\n  page_size: 0\n", key: "runs.page_size"},
		{name: "page size not a number", env: map[string]string{"CONNSUM_RUNS_PAGE_SIZE": "many"}, key: "runs.page_size"},
		{name: "ttl banana", env: map[string]string{"CONNSUM_SUMMARY_CACHE_TTL": "banana"}, key: "summary.cache.ttl"},
		{name: "ttl banana from YAML", file: "summary:\n  cache:\n    ttl: banana\n", key: "summary.cache.ttl"},
		{name: "ttl negative", env: map[string]string{"CONNSUM_SUMMARY_CACHE_TTL": "-5s"}, key: "summary.cache.ttl"},
		{name: "stale_after banana", env: map[string]string{"CONNSUM_RUNS_STALE_AFTER": "banana"}, key: "runs.stale_after"},
		{name: "mysql url", flags: map[string]string{"db.url": "mysql://x"}, key: "db.url"},
		{name: "mysql url from env", env: map[string]string{"CONNSUM_DB_URL": "mysql://x"}, key: "db.url"},
		{name: "auto_migrate maybe", env: map[string]string{"CONNSUM_DB_AUTO_MIGRATE": "maybe"}, key: "db.auto_migrate"},
		{name: "sqlite flag not a bool", env: map[string]string{"CONNSUM_SUMMARY_CACHE_SQLITE": "yes please"}, key: "summary.cache.sqlite"},
		{name: "unknown YAML key", file: "summary:\n  cache:\n    tll: 5s\n", key: "summary.cache.tll"},
		{name: "unknown YAML section", file: "database:\n  url: sqlite:x.db\n", key: "database.url"},
		{name: "short owner token", env: map[string]string{"CONNSUM_AUTH_OWNER_TOKEN": "short"}, key: "auth.owner_token"},
		{name: "admin token equal to the owner token", env: map[string]string{"CONNSUM_AUTH_OWNER_TOKEN": testOwnerToken, "CONNSUM_AUTH_ADMIN_TOKEN": testOwnerToken}, key: "auth.admin_token"},
		{name: "bad log level", env: map[string]string{"CONNSUM_LOG_LEVEL": "loud"}, key: "log.level"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			file := ""
			if c.file != "" {
				file = writeYAML(t, c.file)
			}
			_, err := LoadConfig(file, file != "", envMap(c.env), c.flags)
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error = %v (%T), want *ConfigError", err, err)
			}
			if ce.Key != c.key {
				t.Errorf("ConfigError.Key = %q, want %q", ce.Key, c.key)
			}
			if msg := ce.Error(); !strings.Contains(msg, c.key) || strings.Contains(msg, "\n") {
				t.Errorf("message %q must be one line naming %s", msg, c.key)
			}
		})
	}
	// An explicit --config that does not exist or is not YAML is an error too.
	for _, file := range []string{filepath.Join(t.TempDir(), "absent.yaml"), writeYAML(t, "db: [unclosed\n")} {
		if _, err := LoadConfig(file, true, noEnv, nil); err == nil {
			t.Errorf("LoadConfig(%s) accepted", file)
		} else if ce := (*ConfigError)(nil); !errors.As(err, &ce) {
			t.Errorf("LoadConfig(%s) error %T, want *ConfigError", file, err)
		}
	}
}

func TestEnsureOwnerTokenGeneratesOnceWithMode0600(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	cfg := &Config{DataDir: dir, AdminToken: testAdminToken}
	tokens, generated, err := ensureOwnerToken(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !generated || len(tokens.Owner) < 16 || tokens.Admin != testAdminToken {
		t.Fatalf("first call = %+v generated %v; want a generated owner token of at least 16 chars", tokens, generated)
	}
	path := filepath.Join(dir, "owner_token")
	info, err := os.Stat(path)
	if err != nil {
		t.Fatalf("token file: %v", err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("token file mode = %o, want 600", perm)
	}
	raw, _ := os.ReadFile(path)
	if strings.TrimSpace(string(raw)) != tokens.Owner {
		t.Errorf("stored token %q differs from the returned one", raw)
	}

	again, generated, err := ensureOwnerToken(&Config{DataDir: dir})
	if err != nil || generated || again.Owner != tokens.Owner {
		t.Errorf("second call = %q generated %v, %v; want the stored token %q", again.Owner, generated, err, tokens.Owner)
	}

	other, _, err := ensureOwnerToken(&Config{DataDir: filepath.Join(t.TempDir(), "elsewhere")})
	if err != nil || other.Owner == tokens.Owner {
		t.Errorf("a second data directory got the same token (%v)", err)
	}

	// A configured token wins and nothing is written.
	cfgDir := filepath.Join(t.TempDir(), "configured")
	got, generated, err := ensureOwnerToken(&Config{DataDir: cfgDir, OwnerToken: testOwnerToken})
	if err != nil || generated || got.Owner != testOwnerToken {
		t.Errorf("configured token = %q generated %v, %v", got.Owner, generated, err)
	}
	if _, err := os.Stat(filepath.Join(cfgDir, "owner_token")); !os.IsNotExist(err) {
		t.Errorf("a token file was written although a token is configured (%v)", err)
	}
}

func TestMigrateCommand(t *testing.T) {
	dbtest.EngineURLs(t, func(t *testing.T, url string) {
		t.Chdir(t.TempDir()) // no configs/default.yaml here
		for _, k := range []string{"CONNSUM_DB_URL", "CONNSUM_AUTH_OWNER_TOKEN", "CONNSUM_LOG_LEVEL"} {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
		var out, errOut bytes.Buffer
		if code := Main([]string{"migrate", "--db", url}, &out, &errOut); code != 0 {
			t.Fatalf("connsum migrate = %d: %s", code, errOut.String())
		}
		if !strings.Contains(out.String(), "idx_spine_events_source_run_summary") {
			t.Errorf("migrate output does not list the required indexes:\n%s", out.String())
		}
		if strings.Contains(out.String(), "recreated") {
			t.Errorf("migrate on a migrated database recreated an index:\n%s", out.String())
		}
	})
}

func TestCommandLineErrors(t *testing.T) {
	t.Chdir(t.TempDir())
	var out, errOut bytes.Buffer
	if code := Main([]string{"migrate", "--db", "mysql://x"}, &out, &errOut); code == 0 {
		t.Error("migrate with a mysql URL succeeded")
	}
	if lines := strings.Split(strings.TrimSpace(errOut.String()), "\n"); len(lines) != 1 || !strings.Contains(lines[0], "db.url") {
		t.Errorf("invalid config printed %q; want one line naming db.url", errOut.String())
	}
	errOut.Reset()
	if code := Main([]string{"frobnicate"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "frobnicate") {
		t.Errorf("unknown command = %d %q, want 2 naming it", code, errOut.String())
	}
}
