package app

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"connsum/modules/bootstrap/dbtest"
)

// TestConsoleRowsGoLive opens the overview in headless Chromium, writes through the API, and sees
// the row change in the page without a reload (the page's marker survives, one navigation entry,
// one document request), on both engines; a connection drafted through the API is marked removed.
func TestConsoleRowsGoLive(t *testing.T) {
	chromium := requireChromium(t)
	dbtest.EngineURLs(t, func(t *testing.T, dbURL string) {
		h := startOwnerAdmin(t, dbURL)
		h.do("PUT", "/_ref/connectors/gmail", `{"display_name":"Gmail"}`).expect(t, 201)
		for _, id := range []string{"cin_a", "cin_b"} {
			h.do("POST", "/_ref/connections", map[string]any{"connector_id": "gmail", "connection_id": id, "source_binding_key": id, "display_name": "Mail " + id}).expect(t, 201)
		}
		cookie := h.login(t)
		opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]), chromedp.ExecPath(chromium), chromedp.UserDataDir(t.TempDir()),
			chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
			chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
			chromedp.Flag("disable-sync", true), chromedp.Flag("disable-dev-shm-usage", true))
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
		defer cancelAlloc()
		tab, cancelTab := chromedp.NewContext(alloc)
		defer cancelTab()
		var mu sync.Mutex
		var documents int
		var failed []string
		if err := chromedp.Listen(tab, func(ev any) {
			mu.Lock()
			defer mu.Unlock()
			switch e := ev.(type) {
			case *network.EventRequestWillBeSent:
				if e.Type == network.ResourceTypeDocument {
					documents++
				}
			case *network.EventLoadingFailed:
				if !e.Canceled {
					failed = append(failed, e.ErrorText)
				}
			}
		}); err != nil {
			t.Fatal(err)
		}
		base := "http://" + h.addr
		if err := chromedp.Do(tab); err != nil { // starts the browser and attaches the tab
			t.Fatal(err)
		}
		if _, err := chromedp.Call(tab, network.SetCookie, network.SetCookieParams{Name: cookie.Name, Value: cookie.Value,
			URL: base + "/", Path: "/", HTTPOnly: new(true), SameSite: network.CookieSameSiteLax}); err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(tab,
			chromedp.Navigate(base+"/dashboard"),
			chromedp.WaitVisible(`tr[data-connection-id="cin_a"]`),
			chromedp.WaitVisible(`#live-status[data-state="on"]`),
		); err != nil {
			t.Fatal(err)
		}
		if _, err := chromedp.Run(tab, chromedp.Evaluate[int](`window.__before_write = 1`)); err != nil {
			t.Fatal(err)
		}
		h.do("PATCH", "/_ref/connections/cin_a", map[string]any{"display_name": "Renamed live"}).expect(t, 200)
		h.do("PATCH", "/_ref/connections/cin_b", map[string]any{"status": "draft"}).expect(t, 200)
		if _, err := chromedp.Run(tab, chromedp.Poll[bool](`(document.querySelector('tr[data-connection-id="cin_a"]')||{textContent:''}).textContent.includes('Renamed live') || undefined`,
			chromedp.WithPollingTimeout(20*time.Second))); err != nil {
			t.Fatalf("the row did not change in the page: %v", err)
		}
		if err := chromedp.Do(tab, chromedp.WaitVisible(`tr.removed[data-connection-id="cin_b"]`)); err != nil {
			t.Fatalf("the drafted connection's row is not marked removed: %v", err)
		}
		text, err := chromedp.Run(tab, chromedp.Text(`tr[data-connection-id="cin_a"]`))
		if err != nil {
			t.Fatal(err)
		}
		marker, err := chromedp.Run(tab, chromedp.Evaluate[int](`window.__before_write || 0`))
		if err != nil {
			t.Fatal(err)
		}
		navigations, err := chromedp.Run(tab, chromedp.Evaluate[int](`performance.getEntriesByType('navigation').length`))
		if err != nil {
			t.Fatal(err)
		}
		// The connection page's card follows its connection.
		if err := chromedp.Do(tab,
			chromedp.Navigate(base+"/dashboard/connections/cin_a"),
			chromedp.WaitVisible(`#connection-card`),
			chromedp.WaitVisible(`#live-status[data-state="on"]`),
		); err != nil {
			t.Fatal(err)
		}
		h.do("PATCH", "/_ref/connections/cin_a", map[string]any{"status": "paused"}).expect(t, 200)
		if _, err := chromedp.Run(tab, chromedp.Poll[bool](`(document.querySelector('#connection-card.updated h1')||{textContent:''}).textContent.includes('paused') || undefined`,
			chromedp.WithPollingTimeout(20*time.Second))); err != nil {
			card, _ := chromedp.Run(tab, chromedp.Text(`#connection-card`))
			t.Fatalf("the connection page's card did not follow the pause: %v\n%s", err, card)
		}
		mu.Lock()
		defer mu.Unlock()
		if !strings.Contains(text, "Renamed live") || marker != 1 || navigations != 1 || documents != 2 {
			t.Fatalf("row %q, marker %d, navigations %d, document requests %d: want the new name without a reload (two documents: the overview and the connection page)", text, marker, navigations, documents)
		}
		if len(failed) > 0 {
			t.Fatalf("failed requests: %v", failed)
		}
	})
}
