// connsum console: live updates. The pages are complete without this script; with it, the
// overview's rows and a connection page's card follow the change stream (/dashboard/stream,
// Server-Sent Events) instead of waiting for a reload: a changed connection's row (or card) is
// replaced by the one the server renders with the page's own template, a removed row fades. The
// stream starts at the revision the page was rendered at, so nothing between the render and the
// connection is lost; EventSource reconnects by itself, resuming from the last event it got.
(function () {
  "use strict";
  if (!window.EventSource) return;
  var table = document.querySelector("table[data-live]");
  var cardSource = document.querySelector("[data-live-card]");
  var status = document.getElementById("live-status");
  function say(text, state) {
    if (!status) return;
    status.textContent = text;
    status.setAttribute("data-state", state);
  }
  function parse(html, tag, selector) {
    var holder = document.createElement(tag);
    holder.innerHTML = html;
    return holder.querySelector(selector);
  }
  function follow(url, handlers) {
    var source = new EventSource(url);
    source.addEventListener("open", function () { say("live", "on"); });
    source.addEventListener("error", function () { say("reconnecting…", "off"); });
    source.addEventListener("resync", function () {
      source.close();
      say("updates paused: reload the page", "off");
    });
    Object.keys(handlers).forEach(function (type) {
      source.addEventListener(type, function (e) { handlers[type](JSON.parse(e.data)); });
    });
    return source;
  }
  if (table) {
    var body = table.tBodies[0];
    var rowOf = function (id) {
      for (var i = 0; i < body.rows.length; i++) {
        if (body.rows[i].getAttribute("data-connection-id") === id) return body.rows[i];
      }
      return null;
    };
    follow(table.getAttribute("data-live"), {
      row: function (d) {
        var old = rowOf(d.connection_id);
        if (!old) return; // not on this page (another filter or page, or a new connection)
        var row = parse(d.html, "tbody", "tr");
        if (!row) return;
        row.classList.add("updated");
        old.replaceWith(row);
      },
      remove: function (d) {
        var old = rowOf(d.connection_id);
        if (old) old.classList.add("removed");
      }
    });
  }
  if (cardSource) {
    follow(cardSource.getAttribute("data-live-card"), {
      card: function (d) {
        var old = document.getElementById("connection-card");
        var card = parse(d.html, "div", "section");
        if (!old || !card) return;
        card.classList.add("updated");
        old.replaceWith(card);
      },
      remove: function () {
        var old = document.getElementById("connection-card");
        if (old) old.classList.add("removed");
      }
    });
  }
})();
