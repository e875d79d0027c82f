// agent-run-id viewer: filters on the run page and live updates. No inline script anywhere:
// this file is served from the viewer itself, or carried in a report allowed by its hash.
// The rows it puts in place come from the viewer's own templates, escaped there.
"use strict";
(function () {
  var POLL_MS = 2000;

  function ready(fn) {
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", fn);
    else fn();
  }

  function poll(url, apply) {
    var busy = false;
    window.setInterval(function () {
      if (busy || document.hidden) return;
      busy = true;
      fetch(url(), { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) { if (data) apply(data); })
        .catch(function () { /* the server went away: try again later */ })
        .then(function () { busy = false; });
    }, POLL_MS);
  }

  function initList() {
    var table = document.getElementById("runs");
    if (!table) return;
    table.addEventListener("click", function (event) {
      if (event.target.closest("a")) return;
      var row = event.target.closest("tr[data-run]");
      if (row) window.location.assign("/runs/" + encodeURIComponent(row.dataset.run));
    });
    var live = table.dataset.live;
    if (!live) return;
    var body = document.getElementById("run-rows");
    poll(function () { return live; }, function (data) {
      if (typeof data.rows === "string") body.innerHTML = data.rows;
    });
  }

  function initRun() {
    var lines = document.getElementById("lines");
    var tree = document.getElementById("tree-rows");
    if (!lines || !tree) return;
    var body = document.getElementById("line-rows");
    var label = document.getElementById("run-filter");
    var clear = document.getElementById("clear-run");
    var count = document.getElementById("line-count");
    var state = { run: null, hidden: {} };

    function apply() {
      var shown = 0;
      var rows = body.rows;
      for (var i = 0; i < rows.length; i++) {
        var row = rows[i];
        var show = (state.run === null || row.dataset.run === state.run) && !state.hidden[row.dataset.level];
        row.hidden = !show;
        if (show) shown++;
      }
      count.textContent = String(shown);
      var nodes = tree.rows;
      for (var j = 0; j < nodes.length; j++) {
        nodes[j].classList.toggle("selected", nodes[j].dataset.run === state.run);
      }
    }

    function select(run) {
      state.run = run;
      clear.hidden = run === null;
      if (run === null) {
        label.textContent = label.dataset.all;
      } else {
        var node = tree.querySelector('tr[data-run="' + CSS.escape(run) + '"] .task');
        label.textContent = (node ? node.textContent + " " : "") + run.slice(0, 8);
      }
      apply();
    }

    function pick(event) {
      var row = event.target.closest("tr[data-run]");
      if (row) select(state.run === row.dataset.run ? null : row.dataset.run);
    }
    tree.addEventListener("click", pick);
    tree.addEventListener("keydown", function (event) {
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); pick(event); }
    });
    clear.addEventListener("click", function () { select(null); });
    var boxes = document.querySelectorAll("input.level");
    for (var k = 0; k < boxes.length; k++) {
      boxes[k].addEventListener("change", function (event) {
        state.hidden[event.target.value] = !event.target.checked;
        apply();
      });
    }

    var live = lines.dataset.live;
    if (!live) return;
    var cursor = lines.dataset.cursor || "";
    var status = document.getElementById("run-status");
    poll(function () { return live + "?cursor=" + encodeURIComponent(cursor); }, function (data) {
      if (typeof data.tree === "string") tree.innerHTML = data.tree;
      if (data.reset) body.textContent = "";
      if (typeof data.lines === "string" && data.count > 0) body.insertAdjacentHTML("beforeend", data.lines);
      if (typeof data.cursor === "string") cursor = data.cursor;
      if (status && typeof data.status === "string" && status.textContent !== data.status) {
        status.textContent = data.status;
        status.className = "badge " + data.status;
      }
      apply();
    });
  }

  ready(function () {
    initList();
    initRun();
  });
})();
