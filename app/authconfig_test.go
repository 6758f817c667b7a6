package app

import (
	"errors"
	"testing"
	"time"

	"connsum/modules/auth"
)

// TestAuthConfigKeys: the browser-session keys have their defaults and environment variables,
// reach the auth module, and an invalid value stops the start naming the key.
func TestAuthConfigKeys(t *testing.T) {
	cfg, err := LoadConfig("", false, noEnv, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := auth.Options{SessionTTL: 12 * time.Hour, SessionIdle: time.Hour, LinkTTL: 10 * time.Minute, CookieSecure: auth.SecureAuto, LoginPerMinute: 10}
	if got := cfg.Auth.Options(); got.SessionTTL != want.SessionTTL || got.SessionIdle != want.SessionIdle || got.LinkTTL != want.LinkTTL ||
		got.CookieSecure != want.CookieSecure || got.LoginPerMinute != want.LoginPerMinute {
		t.Errorf("defaults %+v, want %+v", got, want)
	}
	cfg, err = LoadConfig("", false, envMap(map[string]string{"CONNSUM_AUTH_SESSION_TTL": "2h", "CONNSUM_AUTH_SESSION_IDLE": "15m",
		"CONNSUM_AUTH_LOGIN_LINK_TTL": "1m", "CONNSUM_AUTH_COOKIE_SECURE": "true", "CONNSUM_AUTH_LOGIN_PER_MINUTE": "3"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if o := cfg.Auth.Options(); o.SessionTTL != 2*time.Hour || o.SessionIdle != 15*time.Minute || o.LinkTTL != time.Minute ||
		o.CookieSecure != auth.SecureAlways || o.LoginPerMinute != 3 {
		t.Errorf("from the environment: %+v", o)
	}
	for key, env := range map[string]map[string]string{
		"auth.session_ttl":      {"CONNSUM_AUTH_SESSION_TTL": "0"},
		"auth.session_idle":     {"CONNSUM_AUTH_SESSION_IDLE": "30s"},
		"auth.login_link_ttl":   {"CONNSUM_AUTH_LOGIN_LINK_TTL": "forever"},
		"auth.cookie_secure":    {"CONNSUM_AUTH_COOKIE_SECURE": "sometimes"},
		"auth.login_per_minute": {"CONNSUM_AUTH_LOGIN_PER_MINUTE": "0"},
	} {
		_, err := LoadConfig("", false, envMap(env), nil)
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Key != key {
			t.Errorf("%v: error %v, want a ConfigError naming %s", env, err, key)
		}
	}
}
