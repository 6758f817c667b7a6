package metrics

import (
	"go.uber.org/fx"

	"connsum/modules/httpx"
)

// Module provides the Registry, its request-duration middleware and the /metrics route.
var Module = fx.Module("metrics",
	fx.Provide(
		New,
		fx.Annotate(func(r *Registry) *Registry { return r }, fx.As(new(httpx.Registrar)), fx.ResultTags(`group:"routes"`)),
		fx.Annotate((*Registry).Middleware, fx.ResultTags(`group:"middleware"`)),
	),
)
