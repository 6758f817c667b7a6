package app

import (
	"fmt"
	"time"

	"connsum/modules/auth"
)

// AuthConfig is the browser-session part of the auth.* keys (the tokens are in Config).
type AuthConfig struct {
	SessionTTL     time.Duration // auth.session_ttl
	SessionIdle    time.Duration // auth.session_idle
	LinkTTL        time.Duration // auth.login_link_ttl
	CookieSecure   string        // auth.cookie_secure: auto, true or false
	LoginPerMinute int           // auth.login_per_minute
}

// Options are the auth module's options from this configuration.
func (a AuthConfig) Options() auth.Options {
	secure, _ := auth.ParseCookieSecure(a.CookieSecure)
	return auth.Options{SessionTTL: a.SessionTTL, SessionIdle: a.SessionIdle, LinkTTL: a.LinkTTL,
		CookieSecure: secure, LoginPerMinute: a.LoginPerMinute}
}

func cookieSecure(dst func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error {
		if _, ok := auth.ParseCookieSecure(v); !ok {
			return fmt.Errorf("must be auto (Secure over HTTPS), true or false")
		}
		*dst(c) = v
		return nil
	}
}
