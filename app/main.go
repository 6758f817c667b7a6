// Package app is the composition root: CLI, configuration, the fx container, the HTTP server
// with its guards and error handler.
package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/uptrace/bun"
	"go.uber.org/fx"

	"connsum/modules/bootstrap"
	"connsum/modules/perf"
	"connsum/modules/runs"
)

const usage = `connsum — the per-connection summary feed of a personal-data server

usage:
  connsum [serve] [--config FILE] [--addr ADDR] [--db URL] [--demo]
  connsum migrate [--config FILE] [--db URL]
  connsum seed --profile demo|live|fleet [--seed N] [--config FILE] [--db URL]
  connsum rebuild [--config FILE] [--db URL]
  connsum bench api|browser|load|write [flags]   (connsum bench api -h)

Every config key also comes from CONNSUM_<KEY> (summary.cache.ttl → CONNSUM_SUMMARY_CACHE_TTL).
`

// Main runs the CLI and returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(args, stdout, stderr)
	case "migrate":
		err = migrateCmd(args, stdout)
	case "seed":
		err = seedCmd(args, stdout)
	case "rebuild":
		err = rebuildCmd(args, stdout)
	case "bench":
		err = perf.BenchMain(args, stdout, stderr, benchStarter)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "connsum: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "connsum:", err)
		return 1
	}
	return 0
}

// common holds the flags every command shares.
type common struct {
	fs     *flag.FlagSet
	config string
	addr   string
	db     string
}

func newFlags(name string) *common {
	c := &common{fs: flag.NewFlagSet(name, flag.ContinueOnError)}
	c.fs.StringVar(&c.config, "config", "", "YAML config file (default configs/default.yaml when present)")
	c.fs.StringVar(&c.db, "db", "", "database URL: sqlite:PATH or postgres://…")
	return c
}

func (c *common) load() (*Config, error) {
	flags := map[string]string{}
	if c.db != "" {
		flags["db.url"] = c.db
	}
	if c.addr != "" {
		flags["http.addr"] = c.addr
	}
	file, explicit := c.config, c.config != ""
	if !explicit {
		file = "configs/default.yaml"
	}
	return LoadConfig(file, explicit, os.LookupEnv, flags)
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

func serve(args []string, stdout, stderr io.Writer) error {
	c := newFlags("serve")
	c.fs.StringVar(&c.addr, "addr", "", "listen address (http.addr)")
	demo := c.fs.Bool("demo", false, "seed the demo profile into an empty database and print the login URL")
	if err := c.fs.Parse(args); err != nil {
		return err
	}
	cfg, err := c.load()
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.LogLevel)
	tokens, generated, err := ensureOwnerToken(cfg)
	if err != nil {
		return err
	}
	if *demo {
		seeded, err := perf.SeedIfEmpty(context.Background(), cfg.DBURL, "demo", 1, io.Discard)
		if err != nil {
			return err
		}
		if seeded {
			fmt.Fprintln(stdout, "seeded the demo profile")
		}
	}
	var l *Listening
	app := fx.New(Modules(cfg, tokens, log), fx.Populate(&l))
	if err := app.Err(); err != nil {
		return err
	}
	startCtx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := app.Start(startCtx); err != nil {
		return err
	}
	host := l.Addr
	if strings.HasPrefix(host, "0.0.0.0:") || strings.HasPrefix(host, "[::]:") {
		host = "127.0.0.1:" + host[strings.LastIndex(host, ":")+1:]
	}
	fmt.Fprintf(stdout, "connsum listening on http://%s (%s)\n", host, redactURL(cfg.DBURL))
	if generated || *demo {
		fmt.Fprintf(stdout, "console login: http://%s/login?token=%s\n", host, tokens.Owner)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	var serveErr error
	select {
	case <-sig:
	case s := <-app.Wait(): // the server stopped serving (startServer logged why)
		if s.ExitCode != 0 {
			serveErr = fmt.Errorf("http server stopped serving (exit code %d)", s.ExitCode)
		}
	}
	stopCtx, cancelStop := context.WithTimeout(context.Background(), cfg.ShutdownTimeout+5*time.Second)
	defer cancelStop()
	return errors.Join(serveErr, app.Stop(stopCtx))
}

// ensureOwnerToken returns the configured tokens; without an owner token it reads the one stored
// in the data directory, or generates and stores one (mode 0600) on the first start.
func ensureOwnerToken(cfg *Config) (Tokens, bool, error) {
	t := Tokens{Owner: cfg.OwnerToken, Admin: cfg.AdminToken}
	if t.Owner != "" {
		return t, false, nil
	}
	path := filepath.Join(cfg.DataDir, "owner_token")
	if raw, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(raw))) >= 16 {
		t.Owner = strings.TrimSpace(string(raw))
		return t, false, nil
	}
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return t, false, err
	}
	t.Owner = "own_" + hex.EncodeToString(b[:])
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return t, false, fmt.Errorf("create data directory: %w", err)
	}
	if err := os.WriteFile(path, []byte(t.Owner+"\n"), 0o600); err != nil {
		return t, false, fmt.Errorf("store owner token: %w", err)
	}
	return t, true, nil
}

func redactURL(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		if j := strings.LastIndex(u, "@"); j > i {
			return u[:i+3] + "…" + u[j:]
		}
	}
	return u
}

func migrateCmd(args []string, stdout io.Writer) error {
	c := newFlags("migrate")
	if err := c.fs.Parse(args); err != nil {
		return err
	}
	cfg, err := c.load()
	if err != nil {
		return err
	}
	ctx := context.Background()
	db, err := bootstrap.Open(ctx, cfg.DBURL, bootstrap.PoolOptions{})
	if err != nil {
		return err
	}
	defer db.Close()
	st, err := bootstrap.NewMigrator(db).Migrate(ctx) // migrate reports the state, so it keeps the migrator
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "schema %s on %s\n", st.SchemaVersion, st.Dialect)
	for _, ix := range st.Indexes {
		note := "ok"
		if ix.Recreated {
			note = "recreated"
		}
		fmt.Fprintf(stdout, "  index %-40s %s\n", ix.Name, note)
	}
	return nil
}

func seedCmd(args []string, stdout io.Writer) error {
	c := newFlags("seed")
	profile := c.fs.String("profile", "demo", "demo, live or fleet")
	seed := c.fs.Int64("seed", 1, "random seed; the same seed gives the same data")
	if err := c.fs.Parse(args); err != nil {
		return err
	}
	cfg, err := c.load()
	if err != nil {
		return err
	}
	ctx := context.Background()
	db, err := bootstrap.OpenMigrated(ctx, cfg.DBURL, 4)
	if err != nil {
		return err
	}
	defer db.Close()
	start := time.Now()
	st, err := perf.Seed(ctx, db, *profile, *seed, stdout)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "seeded %s: %d connectors, %d connections, %d events in %s\n", *profile, st.Connectors, st.Connections, st.Events, time.Since(start).Round(time.Millisecond))
	return nil
}

// benchStarter starts an in-process server on a free loopback port for `connsum bench api`.
func benchStarter(ctx context.Context, dbURL string) (*perf.Target, error) {
	cfg, err := LoadConfig("configs/default.yaml", false, os.LookupEnv, map[string]string{"db.url": dbURL, "http.addr": "127.0.0.1:0", "log.level": "error"})
	if err != nil {
		return nil, err
	}
	tokens := Tokens{Owner: "bench-owner-" + randomHex(16), Admin: "bench-admin-" + randomHex(16)}
	var l *Listening
	var db *bun.DB // for `bench write`'s backend-memory checkpoints, read through the service's own pool
	app := fx.New(Modules(cfg, tokens, newLogger(io.Discard, "error")), fx.Populate(&l, &db))
	if err := app.Start(ctx); err != nil {
		return nil, err
	}
	return &perf.Target{Base: "http://" + l.Addr, OwnerToken: tokens.Owner, AdminToken: tokens.Admin, DB: db,
		Stop: func() { _ = app.Stop(context.Background()) }}, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// rebuildCmd recomputes the run read model from the spine log and reports what it fixed.
func rebuildCmd(args []string, stdout io.Writer) error {
	c := newFlags("rebuild")
	if err := c.fs.Parse(args); err != nil {
		return err
	}
	cfg, err := c.load()
	if err != nil {
		return err
	}
	ctx := context.Background()
	db, err := bootstrap.OpenMigrated(ctx, cfg.DBURL, 4)
	if err != nil {
		return err
	}
	defer db.Close()
	rm := runs.NewReadModel(db, runs.Options{PageSize: cfg.RunsPageSize, StaleAfter: cfg.RunsStaleAfter}, time.Now)
	start := time.Now()
	rep, err := rm.Rebuild(ctx, db, stdout)
	if err != nil {
		return err
	}
	if rep.Resumed {
		fmt.Fprintln(stdout, "resumed an interrupted rebuild")
	}
	fmt.Fprintf(stdout, "rebuild done in %s: %d runs scanned, %d inserted, %d changed, %d removed; %d heads fixed\n",
		time.Since(start).Round(time.Millisecond), rep.RunsScanned, rep.RunsInserted, rep.RunsChanged, rep.RunsRemoved, rep.HeadsFixed)
	for i, id := range rep.FixedHeadIDs {
		if i == 20 {
			fmt.Fprintf(stdout, "  … and %d more\n", len(rep.FixedHeadIDs)-20)
			break
		}
		fmt.Fprintf(stdout, "  fixed head of %s\n", id)
	}
	return nil
}
