package app

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"time"

	"github.com/gofiber/fiber/v2"
	"go.uber.org/fx"

	"connsum/modules/apidoc"
	"connsum/modules/auth"
	"connsum/modules/bootstrap"
	"connsum/modules/catalog"
	"connsum/modules/console"
	"connsum/modules/health"
	"connsum/modules/httpx"
	"connsum/modules/live"
	"connsum/modules/metrics"
	"connsum/modules/retained"
	"connsum/modules/runs"
	"connsum/modules/summary"
)

// Listening reports the address the HTTP server bound (useful with http.addr port 0).
type Listening struct{ Addr string }

// Modules is the composition of the service: every module plus the HTTP server. Tests replace
// single ports with fx.Replace / fx.Decorate.
func Modules(cfg *Config, tokens Tokens, log *slog.Logger) fx.Option {
	return fx.Options(
		fx.Supply(cfg, tokens, log, bootstrap.Clock(time.Now)),
		fx.Supply(bootstrap.Options{URL: cfg.DBURL, AutoMigrate: cfg.DBAutoMigrate, Pool: poolOptions(cfg)}),
		fx.Supply(runs.Options{PageSize: cfg.RunsPageSize, StaleAfter: cfg.RunsStaleAfter, MaxBatchEvents: cfg.IngestMaxEvents, Evidence: runs.Source(cfg.RunsEvidence)}),
		bootstrap.Module,
		fx.Supply(health.Options{FaultHold: health.DefaultFaultHold}),
		health.Module,
		metrics.Module,
		catalog.Module,
		runs.Module,
		retained.Module,
		fx.Supply(summary.Options{CacheTTL: cfg.CacheTTL, CacheSQLite: cfg.CacheSQLite, CacheMaxEntries: cfg.CacheMaxEntries, ComputeTimeout: cfg.DBRequestTimeout}),
		summary.Module,
		fx.Provide(func() live.Options { o := cfg.Live; o.WriteTimeout = cfg.HTTPWriteTimeout; return o }),
		live.Module,
		console.Module,
		apidoc.Module,
		fx.Provide(func() (auth.Options, error) {
			o := cfg.Auth.Options()
			style, err := console.StyleHash() // the console's inline stylesheet is the one allowed
			o.StyleSources = []string{style}
			return o, err
		}),
		auth.Module,
		fx.Provide(newInFlight, fx.Annotate((*inFlight).middleware, fx.ResultTags(`group:"middleware"`))),
		fx.Provide(fx.Annotate(
			func(cfg *Config, tokens Tokens, authn *auth.Service, log *slog.Logger, regs []httpx.Registrar, mw []httpx.Middleware) *fiber.App {
				return NewServer(ServerParams{Config: cfg, Tokens: tokens, Auth: authn, Registrars: regs, Middleware: mw, Log: log})
			},
			fx.ParamTags(``, ``, ``, ``, `group:"routes"`, `group:"middleware"`),
		)),
		fx.Supply(&Listening{}),
		fx.Invoke(startServer),
		fx.NopLogger,
	)
}

// poolOptions is the service's database pool. No transaction of a request outlives the
// request, so the server may end a session idle in a transaction for longer than the request
// deadline: that is a client that vanished mid-transaction (a network fault), and its locks must
// not outlive it.
func poolOptions(cfg *Config) bootstrap.PoolOptions {
	return bootstrap.PoolOptions{
		MaxOpenConns:             cfg.DBMaxOpenConns,
		MaxIdleConns:             cfg.DBMaxOpenConns,
		StatementTimeout:         cfg.DBStatementTimeout,
		IdleInTransactionTimeout: cfg.DBRequestTimeout,
		ConnectTimeout:           cfg.DBConnectTimeout,
	}
}

// startServer listens after bootstrap is ready (Ready's start hook was appended first) and
// shuts down gracefully: in-flight requests finish within http.shutdown_timeout. Before it
// listens it warms the feed up (summary.Feed.WarmUp, bounded by maxWarmUp); a failed or cut
// warm-up is logged and serving goes on, since readiness reports the database. When serving
// fails it asks the app to shut down with exit code 1, so the process does not linger without
// a server. A shutdown that outlasts the timeout is a planned stop, not a failure: it logs what
// it cuts (requests in handlers, connections still sending or receiving) and returns nil, so the
// process exits 0; the cut requests' transactions roll back (a batch is all or nothing).
// maxWarmUp bounds the start's warm-up: a database that stops answering right after the ready
// check must not keep the service from listening (and /readyz from saying so) for a whole
// db.request_timeout. The warm-up of 10,000 connections takes about 0.4 s.
const maxWarmUp = 3 * time.Second

func startServer(lc fx.Lifecycle, sd fx.Shutdowner, app *fiber.App, cfg *Config, _ *bootstrap.Ready, l *Listening, fl *inFlight, streams *live.Hub, feed *summary.Feed, log *slog.Logger) {
	var ln net.Listener
	lc.Append(fx.Hook{
		OnStart: func(ctx context.Context) error {
			wctx, cancel := context.WithTimeout(ctx, min(cfg.DBRequestTimeout, maxWarmUp))
			if st, err := feed.WarmUp(wctx); err != nil {
				log.Warn("feed warm-up failed; serving anyway", "err", err)
			} else {
				log.Debug("feed warmed up", "statements", st.Statements, "ms", st.Total.Milliseconds())
			}
			cancel()
			var err error
			ln, err = net.Listen("tcp", cfg.HTTPAddr)
			if err != nil {
				return &keyedError{key: "http.addr", err: err}
			}
			l.Addr = ln.Addr().String()
			app.Server().ConnState = fl.connState
			go func() {
				if err := app.Listener(ln); err != nil {
					log.Error("http server stopped", "err", err)
					_ = sd.Shutdown(fx.ExitCode(1))
				}
			}()
			return nil
		},
		OnStop: func(ctx context.Context) error {
			streams.Drain() // open streams end first: they would hold the shutdown up to its timeout
			err := app.ShutdownWithTimeout(cfg.ShutdownTimeout)
			// If Stop comes before the serving goroutine registered the listener, fiber's
			// shutdown has nothing to close: close it here so the port is never left open.
			_ = ln.Close()
			if errors.Is(err, context.DeadlineExceeded) {
				fl.logCut(log, cfg.ShutdownTimeout)
				return nil
			}
			return err
		},
	})
}
