package console

import (
	"go.uber.org/fx"

	"connsum/modules/httpx"
)

// Module provides the console pages.
var Module = fx.Module("console",
	fx.Provide(fx.Annotate(NewPages, fx.As(new(httpx.Registrar)), fx.ResultTags(`group:"routes"`))),
)
