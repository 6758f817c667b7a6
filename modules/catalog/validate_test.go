package catalog_test

import (
	"testing"

	"connsum/modules/catalog"
	"connsum/modules/httpx"
)

// TestManifestStringsAndStoredForm: a manifest refuses NUL and lone surrogates in any string,
// naming the field; it is stored compacted as sent (no HTML escaping); and a manifest an earlier
// build stored with a lone surrogate (it kept it as sent) still reads with its streams.
func TestManifestStringsAndStoredForm(t *testing.T) {
	for raw, field := range map[string]string{
		`{"display_name":"A\u0000B"}`:                                                       "display_name",
		`{"display_name":"A","version":"\ud800"}`:                                           "version",
		`{"display_name":"A","capabilities":{"browser_surface":{"profile_key":"k\u0000"}}}`: "capabilities.browser_surface.profile_key",
		`{"display_name":"A","streams":[{"name":"a"},{"name":"\udc00"}]}`:                   "streams[1].name",
		`{"display_name":"A","x_vendor":[{"k":"\u0000"}]}`:                                  "x_vendor[0].k",
	} {
		_, err := catalog.ParseManifest([]byte(raw))
		if e, ok := httpx.As(err); !ok || e.Status != 400 || e.Field != field {
			t.Errorf("ParseManifest(%s) = %v, want 400 on %q", raw, err, field)
		}
	}
	m, err := catalog.ParseManifest([]byte(`{ "display_name" : "<A & B>", "x" : "\u00e9\ud83d\ude00" }`))
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Raw) != `{"display_name":"<A & B>","x":"\u00e9\ud83d\ude00"}` {
		t.Errorf("stored manifest %s, want it compacted as sent", m.Raw)
	}
	legacy := &catalog.Connector{Manifest: []byte(`{"display_name":"A","streams":[{"name":"orders"},{"name":"x\ud800"}],"capabilities":{"refresh_policy":{"maximum_staleness_seconds":60}}}`)}
	legacy.DecodeManifest()
	if got := legacy.Streams(); len(got) != 2 || got[0] != "orders" || legacy.MaxStalenessSeconds() != 60 {
		t.Errorf("a stored legacy manifest reads as streams %q, staleness %d", got, legacy.MaxStalenessSeconds())
	}
}
