package health

import (
	"go.uber.org/fx"

	"connsum/modules/bootstrap"
	"connsum/modules/httpx"
)

// Module provides the storage-fault watcher (with its write-health middleware) and the health
// routes /healthz and /readyz. It needs Options, the database and bootstrap's Ready.
var Module = fx.Module("health",
	fx.Provide(
		fx.Private,
		func(r *bootstrap.Ready) Bootstrap { return r },
	),
	fx.Provide(
		NewFaultWatcher,
		fx.Annotate(NewRoutes, fx.As(new(httpx.Registrar)), fx.ResultTags(`group:"routes"`)),
		fx.Annotate((*FaultWatcher).Middleware, fx.ResultTags(`group:"middleware"`)),
	),
)
