package apidoc

import (
	"go.uber.org/fx"

	"connsum/modules/httpx"
)

// Module contributes GET /openapi.json to the "routes" group.
var Module = fx.Module("apidoc",
	fx.Provide(fx.Annotate(NewRoutes, fx.As(new(httpx.Registrar)), fx.ResultTags(`group:"routes"`))),
)
