/* conveyor dashboard: relative times that keep ticking, confirmations for destructive
   forms, the bulk-selection bar, and the throughput charts (uPlot) fed over SSE.
   Everything else is server-rendered HTML that htmx's SSE extension swaps in. */
(function () {
  "use strict";
  var skew = 0; // the backend's clock minus this browser's, so "3 min ago" matches the server
  var serverNow = Number(document.body.dataset.now);
  if (serverNow) skew = serverNow - Date.now();

  function duration(ms) {
    var s = Math.max(ms, 0) / 1000;
    if (s < 1) return Math.floor(s * 1000) + " ms";
    if (s < 10) return s.toFixed(1) + " s";
    if (s < 60) return Math.floor(s) + " s";
    var m = Math.floor(s / 60), sec = Math.floor(s % 60);
    if (m < 60) return m + " min" + (sec && m < 10 ? " " + sec + " s" : "");
    var h = Math.floor(m / 60); m = m % 60;
    if (h < 24) return h + " h" + (m ? " " + m + " min" : "");
    var d = Math.floor(h / 24); h = h % 24;
    return d + " d" + (h ? " " + h + " h" : "");
  }
  function ago(ms) {
    var delta = Date.now() + skew - ms;
    if (Math.abs(delta) < 1500) return "just now";
    return delta > 0 ? duration(delta) + " ago" : "in " + duration(-delta);
  }
  function tick() {
    var times = document.querySelectorAll("time[data-ms]");
    for (var i = 0; i < times.length; i++) times[i].textContent = ago(Number(times[i].dataset.ms));
  }
  setInterval(tick, 5000);

  // Destructive or wide-reaching forms ask first (the button's data-confirm, else the form's).
  document.addEventListener("submit", function (e) {
    var button = e.submitter, form = e.target;
    var text = (button && button.dataset.confirm) || form.dataset.confirm;
    if (text && !window.confirm(text)) e.preventDefault();
  });

  // Bulk selection on the queue page.
  function updateSelection() {
    var boxes = document.querySelectorAll('input[name="ids"]');
    var n = 0;
    for (var i = 0; i < boxes.length; i++) if (boxes[i].checked) n++;
    var label = document.querySelector("[data-selected-count]");
    if (label) label.textContent = n + " selected";
    var buttons = document.querySelectorAll("[data-needs-selection]");
    for (var j = 0; j < buttons.length; j++) buttons[j].disabled = n === 0;
  }
  document.addEventListener("change", function (e) {
    var t = e.target;
    if (t.matches && t.matches("[data-select-all]")) {
      var boxes = document.querySelectorAll('input[name="ids"]');
      for (var i = 0; i < boxes.length; i++) boxes[i].checked = t.checked;
    }
    if (t.matches && (t.matches("[data-select-all]") || t.name === "ids")) updateSelection();
  });
  document.addEventListener("DOMContentLoaded", updateSelection);

  // Whether the page is live: the SSE stream is open, reconnecting, or done (a final job).
  function liveStatus(text, state) {
    var el = document.getElementById("live-status");
    if (!el) return;
    el.textContent = text;
    el.className = "live-status " + state;
  }
  document.addEventListener("htmx:sseOpen", function () { liveStatus("live", "ok"); });
  document.addEventListener("htmx:sseError", function () { liveStatus("reconnecting…", "down"); });
  document.addEventListener("htmx:sseClose", function () { liveStatus("up to date", "done"); });

  // Charts: throughput and failure rate for the last hour, updated by the `chart` SSE event.
  function charts() {
    var source = document.getElementById("chart-data");
    var tpEl = document.getElementById("chart-throughput");
    var rateEl = document.getElementById("chart-rate");
    if (!source || !tpEl || !rateEl) return;
    if (!window.uPlot) {
      tpEl.textContent = rateEl.textContent = "Charts need the dashboard's front-end files (run the set-up script).";
      return;
    }
    var data = JSON.parse(source.textContent);
    function size(el) { return { width: Math.max(el.clientWidth, 240), height: 200 }; }
    function axes(unit) {
      return [{ stroke: "#6b7280", grid: { stroke: "#f3f4f6" } },
              { stroke: "#6b7280", grid: { stroke: "#f3f4f6" }, size: 52, values: function (u, vals) {
                return vals.map(function (v) { return v + unit; }); } }];
    }
    var throughput = new uPlot(Object.assign(size(tpEl), {
      series: [{}, { label: "completed", stroke: "#15803d", fill: "rgba(21,128,61,.10)", width: 2, points: { size: 4 } },
                   { label: "failed attempts", stroke: "#dc2626", fill: "rgba(220,38,38,.10)", width: 2, points: { size: 4 } }],
      axes: axes(""), scales: { y: { range: function (u, min, max) { return [0, Math.max(max, 5)]; } } },
      cursor: { drag: { x: false, y: false } }, legend: { live: true }
    }), [data.x, data.completed, data.failed], tpEl);
    var rate = new uPlot(Object.assign(size(rateEl), {
      series: [{}, { label: "failure rate", stroke: "#dc2626", fill: "rgba(220,38,38,.08)", width: 2,
                     points: { show: true, size: 5 },
                     value: function (u, v) { return v == null ? "—" : v + " %"; } }],
      axes: axes("%"), scales: { y: { range: [0, 100] } },
      cursor: { drag: { x: false, y: false } }
    }), [data.x, data.rate], rateEl);
    var feed = document.getElementById("chart-feed");
    if (feed) feed.addEventListener("htmx:sseBeforeMessage", function (e) {
      e.preventDefault(); // the data is JSON for the charts, not HTML to swap in
      var d = JSON.parse(e.detail.data);
      throughput.setData([d.x, d.completed, d.failed]);
      rate.setData([d.x, d.rate]);
    });
    window.addEventListener("resize", function () {
      throughput.setSize(size(tpEl)); rate.setSize(size(rateEl));
    });
  }
  // The job page's logs follow the newest line, unless the reader scrolled up.
  document.addEventListener("htmx:sseBeforeMessage", function (e) {
    var box = e.target.querySelector && e.target.querySelector(".logs");
    e.target.dataset.followLogs = !box || box.scrollHeight - box.scrollTop - box.clientHeight < 40 ? "1" : "";
  });
  function followLogs(root) {
    var box = root.querySelector && root.querySelector(".logs");
    if (box && root.dataset.followLogs !== "") box.scrollTop = box.scrollHeight;
  }
  document.addEventListener("htmx:afterSwap", function (e) { followLogs(e.target); tick(); });
  document.addEventListener("DOMContentLoaded", function () {
    var logs = document.getElementById("job-logs");
    if (logs) followLogs(logs);
  });

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", charts);
  else charts();
})();
