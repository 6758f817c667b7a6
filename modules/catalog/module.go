package catalog

import (
	"github.com/uptrace/bun"
	"go.uber.org/fx"

	"connsum/modules/bootstrap"
	"connsum/modules/httpx"
)

// Module provides the catalog store, its Reader port and its write routes. The store requires a
// WriteHook (the runs module provides one in either evidence configuration), so a service that
// lacks the module maintaining derived state fails to start instead of letting it fall behind.
var Module = fx.Module("catalog",
	fx.Provide(
		fx.Annotate(func(db *bun.DB, now bootstrap.Clock, hook WriteHook) *Store { return NewStore(db, now).WithHook(hook) },
			fx.As(fx.Self()), fx.As(new(Reader))),
		fx.Annotate(
			func(s *Store, n ChangeNotifier) *Handlers { return NewHandlers(s, n) },
			fx.ParamTags(``, `optional:"true"`),
			fx.As(new(httpx.Registrar)), fx.ResultTags(`group:"routes"`),
		),
	),
)
