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

	"connsum/modules/auth"
	"connsum/modules/bootstrap"
	"connsum/modules/perf"
	"connsum/modules/runs"
)

const usage = `connsum — the per-connection summary feed of a personal-data server

usage: connsum [command] [flags]      (connsum <command> --help lists its flags)

commands:
  serve          run the HTTP API and the owner console (the default; --demo seeds demo data into an empty database)
  migrate        apply the database migrations and verify/recreate the required indexes
  seed           load a data profile into the database (--profile demo|live|fleet|fleet10k, --seed N)
  rebuild        recompute the run read model from the spine event log (resumable)
  bench api      measure the API's reads and ingest on a seeded profile (--profile, --json, --compare)
  bench browser  measure console pages in headless Chromium (--base URL, --routes, --viewports)
  bench load     64 overview readers and a writer against an in-process server (--seconds, --json)
  bench write    concurrent ingest, catalog and retained writers, and database memory (--writers, --batch)
  bench live     write-to-subscriber latency of the change stream, 304 cost (--subscribers, --seconds)
  help           print this list

serve, migrate, seed and rebuild take --config FILE and --db URL; every config key also comes from
CONNSUM_<KEY> (summary.cache.ttl → CONNSUM_SUMMARY_CACHE_TTL). API: docs/API.md, GET /openapi.json.
`

// benchUsage lists the bench commands (connsum bench --help).
const benchUsage = `usage: connsum bench <command> [flags]      (connsum bench <command> --help lists its flags)

commands:
  api      measure the API's reads and ingest on a seeded profile
  browser  measure console pages in headless Chromium
  load     64 overview readers and a writer against an in-process server
  write    concurrent ingest, catalog and retained writers, and database memory
  live     write-to-subscriber latency of the change stream (two replicas on PostgreSQL), 304 cost
`

// usageError is a command line that names no valid command or carries stray arguments: exit 2.
type usageError string

func (e usageError) Error() string { return string(e) }

// Main runs the CLI and returns the process exit code: 0 on success (and for --help), 1 when the
// command failed, 2 for a command line that is not valid.
func Main(args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && (!strings.HasPrefix(args[0], "-") || isHelp(args[0])) {
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
		err = benchCmd(args, stdout, stderr)
	case "help", "-h", "-help", "--help":
		if len(args) > 0 { // connsum help seed: seed's flags
			switch args[0] {
			case "serve", "migrate", "seed", "rebuild", "bench":
				return Main(append(append([]string{}, args...), "--help"), stdout, stderr)
			}
			fmt.Fprintf(stderr, "connsum: unknown command %q\n\n%s", args[0], usage)
			return 2
		}
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "connsum: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	var ue usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, "connsum:", err)
		return 2
	}
	fmt.Fprintln(stderr, "connsum:", err)
	return 1
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help" || arg == "help"
}

// benchCmd dispatches the bench commands; `connsum bench --help` lists them.
func benchCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, benchUsage)
		return usageError("bench: name a bench command")
	}
	switch args[0] {
	case "api", "browser", "load", "write", "live":
	default:
		if isHelp(args[0]) {
			fmt.Fprint(stdout, benchUsage)
			return nil
		}
		fmt.Fprint(stderr, benchUsage)
		return usageError(fmt.Sprintf("bench: unknown bench command %q", args[0]))
	}
	// The benches seed and open their own databases; like migrate and seed, a --db naming a
	// SQLite file in a directory that does not exist is refused rather than created (a typo).
	if db, ok := flagValue(args[1:], "db"); ok {
		if err := requireSQLiteDir(db); err != nil {
			return err
		}
	}
	return perf.BenchMain(args, stdout, stderr, benchStarter)
}

// flagValue finds -name/--name VALUE or -name=VALUE among args.
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v, true
		}
		if a == name && i+1 < len(args) {
			return args[i+1], true
		}
	}
	return "", false
}

// requireSQLiteDir refuses a SQLite database whose directory does not exist. Only serve creates
// its data directory; for the other commands a missing directory is almost always a typo, and
// creating it would seed or migrate a database nobody will find.
func requireSQLiteDir(dbURL string) error {
	d, path, err := bootstrap.ParseURL(dbURL)
	if err != nil || d != bootstrap.SQLite {
		return nil // an invalid URL is reported by the command, naming db.url
	}
	if strings.Contains(path, ":memory:") {
		return nil
	}
	dir := filepath.Dir(path)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return fmt.Errorf("db.url: the directory %q of %s does not exist (create it first; only connsum serve creates its data directory)", dir, dbURL)
	}
	return nil
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

// parse parses the command's flags and refuses positional arguments: every command takes flags
// only, so `connsum seed help` must not seed a database.
func (c *common) parse(args []string) error {
	if err := c.fs.Parse(args); err != nil {
		return err
	}
	if c.fs.NArg() > 0 {
		return usageError(fmt.Sprintf("%s: unexpected argument %q (the command takes flags only; connsum %s --help lists them)", c.fs.Name(), c.fs.Arg(0), c.fs.Name()))
	}
	return nil
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
	if err := c.parse(args); err != nil {
		return err
	}
	cfg, err := c.load()
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.LogLevel)
	tokens, generated, err := ensureOwnerToken(cfg)
	if err != nil {
		return startupError(cfg, &keyedError{key: "data.dir", err: err})
	}
	if *demo {
		seeded, err := perf.SeedIfEmpty(context.Background(), cfg.DBURL, "demo", 1, io.Discard)
		if err != nil {
			return startupError(cfg, err)
		}
		if seeded {
			fmt.Fprintln(stdout, "seeded the demo profile")
		} else {
			fmt.Fprintln(stdout, "the database is not empty: kept the existing data (--demo seeds only an empty database)")
		}
	}
	var l *Listening
	var authn *auth.Service
	app := fx.New(Modules(cfg, tokens, log), fx.Populate(&l, &authn))
	if err := app.Err(); err != nil {
		return startupError(cfg, err)
	}
	startCtx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := app.Start(startCtx); err != nil {
		return startupError(cfg, err)
	}
	host := l.Addr
	if strings.HasPrefix(host, "0.0.0.0:") || strings.HasPrefix(host, "[::]:") {
		host = "127.0.0.1:" + host[strings.LastIndex(host, ":")+1:]
	}
	fmt.Fprintf(stdout, "connsum listening on http://%s (%s)\n", host, redactURL(cfg.DBURL))
	// The long-lived owner token is never printed: a first start or --demo prints a one-time
	// link (single use, auth.login_link_ttl), other starts the login form's address.
	if generated || *demo {
		if path, exp, err := authn.IssueLoginLink(startCtx); err != nil {
			// The service runs; the login form (GET /login) takes the token instead.
			log.Warn("no one-time login link", "err", err)
			fmt.Fprintf(stdout, "console login: http://%s/login\n", host)
		} else {
			fmt.Fprintf(stdout, "console login (one-time link, valid until %s): http://%s%s\n", exp.Format(time.RFC3339), host, path)
		}
	} else {
		fmt.Fprintf(stdout, "console login: http://%s/login\n", host)
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
	if err := c.parse(args); err != nil {
		return err
	}
	cfg, err := c.load()
	if err != nil {
		return err
	}
	if err := requireSQLiteDir(cfg.DBURL); err != nil {
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
	profile := c.fs.String("profile", "demo", "demo, live, fleet or fleet10k")
	seed := c.fs.Int64("seed", 1, "random seed; the same seed gives the same data")
	if err := c.parse(args); err != nil {
		return err
	}
	cfg, err := c.load()
	if err != nil {
		return err
	}
	if err := requireSQLiteDir(cfg.DBURL); err != nil {
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
	if err := c.parse(args); err != nil {
		return err
	}
	cfg, err := c.load()
	if err != nil {
		return err
	}
	if err := requireSQLiteDir(cfg.DBURL); err != nil {
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
