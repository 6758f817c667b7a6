// connsum console: live rows. The page is complete without this script; with it, the overview's
// rows follow the change stream (/dashboard/stream, Server-Sent Events) instead of waiting for a
// reload: a changed connection's row is replaced by the server-rendered row, a removed one fades.
// The stream starts at the revision the page was rendered at, so nothing between the render and
// the connection is lost; EventSource reconnects by itself, resuming from the last event it got.
(function () {
  "use strict";
  var table = document.querySelector("table[data-live]");
  if (!table || !window.EventSource) return;
  var body = table.tBodies[0];
  var status = document.getElementById("live-status");
  var source = new EventSource(table.getAttribute("data-live"));
  function say(text, state) {
    if (!status) return;
    status.textContent = text;
    status.setAttribute("data-state", state);
  }
  function rowOf(id) {
    var rows = body.rows;
    for (var i = 0; i < rows.length; i++) {
      if (rows[i].getAttribute("data-connection-id") === id) return rows[i];
    }
    return null;
  }
  source.addEventListener("open", function () { say("live", "on"); });
  source.addEventListener("error", function () { say("reconnecting…", "off"); });
  source.addEventListener("row", function (e) {
    var d = JSON.parse(e.data);
    var old = rowOf(d.connection_id);
    if (!old) return; // not on this page (another filter, page or a new connection)
    var holder = document.createElement("tbody");
    holder.innerHTML = d.html;
    var row = holder.querySelector("tr");
    if (!row) return;
    row.classList.add("updated");
    old.replaceWith(row);
  });
  source.addEventListener("remove", function (e) {
    var old = rowOf(JSON.parse(e.data).connection_id);
    if (old) old.classList.add("removed");
  });
  source.addEventListener("resync", function () {
    source.close();
    say("updates paused: reload the page", "off");
  });
})();
