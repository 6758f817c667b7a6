package auth

import (
	"go.uber.org/fx"

	"connsum/modules/httpx"
)

// Module provides the session store over the service's database and the Service, whose routes
// (login, logout, admin sessions) join the "routes" group. The app builds its server's guards
// and security headers from the Service.
var Module = fx.Module("auth",
	fx.Provide(
		NewStore,
		NewService,
		fx.Annotate(func(s *Service) *Service { return s }, fx.As(new(httpx.Registrar)), fx.ResultTags(`group:"routes"`)),
	),
)
