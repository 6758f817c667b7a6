package retained

import (
	"github.com/uptrace/bun"
	"go.uber.org/fx"

	"connsum/modules/bootstrap"
	"connsum/modules/httpx"
)

// Module provides the retained store, its Snapshot port and its write routes.
var Module = fx.Module("retained",
	fx.Provide(
		fx.Annotate(func(db *bun.DB, now bootstrap.Clock) *Store { return NewStore(db, now) }, fx.As(fx.Self()), fx.As(new(Snapshot))),
		fx.Annotate(NewHandlers, fx.As(new(httpx.Registrar)), fx.ResultTags(`group:"routes"`)),
	),
)
