// Live metric charts on a run page: one small line chart per metric key, grouped by key prefix
// (train/, reward/, eval/). Polls the run's metrics endpoint for points newer than the last one it
// has, and stops once the endpoint says the run has finished.
(function () {
  "use strict";

  var GROUPS = { train: "Training", reward: "Reward", eval: "Evaluation", other: "Other" };
  var ORDER = ["train", "reward", "eval", "other"];
  var COLOURS = ["#2856d8", "#1f8a4c", "#c0352b", "#b7791f", "#7c3aed", "#0e7490", "#be185d", "#4d7c0f"];
  var POLL_MS = 2000;
  // A line needs two points: a lone point (an eval chart after one evaluation, every PPO chart at step 1)
  // is drawn as a dot, and sparse series show their points too.
  var SPARSE = 12;

  function pointRadius(context) {
    var count = context.dataset.data.length;
    return count <= 1 ? 4 : count <= SPARSE ? 2.5 : 0;
  }

  // Learning rates and KL values span many decades; keep axis labels short.
  function tick(value) {
    var size = Math.abs(value);
    if (size !== 0 && (size < 1e-3 || size >= 1e5)) return value.toExponential(1);
    return String(Math.round(value * 1e4) / 1e4);
  }

  function groupOf(key) {
    var slash = key.indexOf("/");
    var prefix = slash > 0 ? key.slice(0, slash) : "";
    return GROUPS.hasOwnProperty(prefix) && prefix !== "other" ? prefix : "other";
  }

  function LiveCharts(root) {
    this.root = root;
    this.url = root.getAttribute("data-metrics-url");
    this.container = root.querySelector(".chart-groups");
    this.empty = root.querySelector(".charts-empty");
    this.lastId = 0;
    this.charts = {};
    this.groups = {};
    this.count = 0;
  }

  LiveCharts.prototype.groupBox = function (name) {
    if (this.groups[name]) return this.groups[name];
    var section = document.createElement("div");
    section.className = "chart-group";
    section.setAttribute("data-group", name);
    var title = document.createElement("h3");
    title.textContent = GROUPS[name];
    var grid = document.createElement("div");
    grid.className = "chart-grid";
    section.appendChild(title);
    section.appendChild(grid);
    // Keep the sections in a fixed order whatever order the keys arrive in.
    var before = null;
    for (var i = ORDER.indexOf(name) + 1; i < ORDER.length && !before; i++) {
      before = this.groups[ORDER[i]] ? this.groups[ORDER[i]].section : null;
    }
    this.container.insertBefore(section, before);
    this.groups[name] = { section: section, grid: grid };
    return this.groups[name];
  };

  LiveCharts.prototype.chartFor = function (key) {
    if (this.charts[key]) return this.charts[key];
    var box = document.createElement("figure");
    box.className = "chart-box";
    box.setAttribute("data-key", key);
    var canvas = document.createElement("canvas");
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", "Chart of " + key + " by step");
    box.appendChild(canvas);
    this.groupBox(groupOf(key)).grid.appendChild(box);
    var colour = COLOURS[this.count++ % COLOURS.length];
    var chart = new window.Chart(canvas, {
      type: "line",
      data: { datasets: [{ label: key, data: [], borderColor: colour, backgroundColor: colour, borderWidth: 1.5, pointRadius: pointRadius, pointHoverRadius: 4, tension: 0 }] },
      options: {
        animation: false,
        parsing: false,
        maintainAspectRatio: false,
        interaction: { mode: "nearest", intersect: false },
        scales: { x: { type: "linear", ticks: { precision: 0 }, title: { display: true, text: "step" } }, y: { type: "linear", ticks: { callback: tick } } },
        plugins: { legend: { display: false }, title: { display: true, text: key } }
      }
    });
    this.charts[key] = chart;
    return chart;
  };

  LiveCharts.prototype.add = function (series) {
    var keys = Object.keys(series).sort();
    for (var i = 0; i < keys.length; i++) {
      var chart = this.chartFor(keys[i]);
      var data = chart.data.datasets[0].data;
      var points = series[keys[i]];
      for (var j = 0; j < points.length; j++) data.push({ x: points[j][0], y: points[j][1] });
      data.sort(function (a, b) { return a.x - b.x; });
      chart.update("none");
    }
    if (keys.length && this.empty) {
      this.empty.remove();
      this.empty = null;
    }
  };

  LiveCharts.prototype.poll = function () {
    var self = this;
    fetch(this.url + "?after=" + this.lastId, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (payload) {
        self.lastId = payload.last_id;
        self.add(payload.series || {});
        if (!payload.finished) window.setTimeout(function () { self.poll(); }, POLL_MS);
      })
      .catch(function () {
        // A network hiccup or a restarting server: try again a little later.
        window.setTimeout(function () { self.poll(); }, POLL_MS * 3);
      });
  };

  function start() {
    var root = document.getElementById("charts");
    if (!root || !window.Chart) return;
    new LiveCharts(root).poll();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
