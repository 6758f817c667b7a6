package app

import "go.uber.org/fx"

// featureModules are the read-side modules (feed, console); kept apart so the foundation wires
// without them.
func featureModules(cfg *Config) fx.Option {
	return fx.Options()
}
