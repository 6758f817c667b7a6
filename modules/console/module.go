package console

import (
	"go.uber.org/fx"

	"connsum/modules/httpx"
)

// Module provides the console pages and their live rows (the change stream, module live).
var Module = fx.Module("console",
	fx.Provide(
		NewPages,
		fx.Annotate(func(p *Pages) httpx.Registrar { return p }, fx.ResultTags(`group:"routes"`)),
		fx.Annotate(NewLiveRows, fx.As(new(httpx.Registrar)), fx.ResultTags(`group:"routes"`)),
	),
)
