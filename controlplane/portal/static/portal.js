// SandboxMesh portal: live status by Server-Sent Events (no polling). The
// server sends each changed sandbox's rendered row and badge; this script
// only puts them in place. Pages work without it (reload to refresh).
(function () {
  "use strict";
  function live(el, onEvent) {
    if (!window.EventSource || !el) return;
    var note = document.getElementById("live");
    var es = new EventSource(el.getAttribute("data-events"));
    es.addEventListener("open", function () { if (note) note.textContent = "Live: status updates as the agents report it."; document.body.setAttribute("data-live", "1"); });
    es.addEventListener("error", function () { if (note) note.textContent = "Reconnecting…"; document.body.removeAttribute("data-live"); });
    es.addEventListener("end", function () { es.close(); if (note) note.textContent = "Live updates stopped: reload the page."; });
    es.addEventListener("sandbox", function (e) { onEvent(JSON.parse(e.data)); });
  }
  function fromHTML(html) {
    var t = document.createElement("template");
    t.innerHTML = html.trim();
    return t.content.firstElementChild;
  }
  document.addEventListener("DOMContentLoaded", function () {
    var table = document.getElementById("sandboxes");
    live(table, function (ev) {
      var row = document.getElementById("sb-" + ev.name);
      if (ev.deleted) { if (row) row.remove(); return; }
      var fresh = fromHTML(ev.row);
      if (row) { row.replaceWith(fresh); }
      else { table.tBodies[0].prepend(fresh); table.hidden = false; }
    });
    var card = document.getElementById("status-card");
    live(card, function (ev) {
      if (ev.name !== card.getAttribute("data-name")) return;
      if (ev.deleted) { document.getElementById("badge").textContent = "Deleted"; return; }
      document.getElementById("badge").innerHTML = ev.badge;
      document.getElementById("status-msg").textContent = ev.status || "";
      var observed = document.getElementById("observed");
      if (observed && ev.observed) observed.replaceWith(fromHTML(ev.observed));
    });
    var reload = document.querySelector("select[data-reload]");
    if (reload) reload.addEventListener("change", function () { document.getElementById("show-yaml").click(); });
  });
})();
