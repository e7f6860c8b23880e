// Run comparison: one chart per metric key, one line per run (the colours of the table's swatches).
(function () {
  "use strict";

  var COLOURS = ["#2856d8", "#c0352b", "#1f8a4c", "#b7791f", "#7c3aed", "#0e7490", "#be185d", "#4d7c0f"];
  var GROUPS = { eval: "Evaluation", reward: "Reward", train: "Training", other: "Other" };
  var ORDER = ["eval", "reward", "train", "other"];

  function groupOf(key) {
    var slash = key.indexOf("/");
    var prefix = slash > 0 ? key.slice(0, slash) : "";
    return GROUPS.hasOwnProperty(prefix) && prefix !== "other" ? prefix : "other";
  }

  function tick(value) {
    var size = Math.abs(value);
    if (size !== 0 && (size < 1e-3 || size >= 1e5)) return value.toExponential(1);
    return String(Math.round(value * 1e4) / 1e4);
  }

  function draw(root, runs) {
    var container = root.querySelector(".chart-groups");
    var keys = {};
    runs.forEach(function (run) { Object.keys(run.series).forEach(function (key) { keys[key] = true; }); });
    var sorted = Object.keys(keys).sort(function (a, b) {
      var ga = ORDER.indexOf(groupOf(a)), gb = ORDER.indexOf(groupOf(b));
      return ga !== gb ? ga - gb : (a < b ? -1 : a > b ? 1 : 0);
    });
    var empty = root.querySelector(".charts-empty");
    if (!sorted.length) {
      if (empty) empty.textContent = "None of these runs reported a metric yet.";
      return;
    }
    if (empty) empty.remove();
    var grids = {};
    sorted.forEach(function (key) {
      var group = groupOf(key);
      if (!grids[group]) {
        var section = document.createElement("div");
        section.className = "chart-group";
        var title = document.createElement("h3");
        title.textContent = GROUPS[group];
        var grid = document.createElement("div");
        grid.className = "chart-grid";
        section.appendChild(title);
        section.appendChild(grid);
        container.appendChild(section);
        grids[group] = grid;
      }
      var box = document.createElement("figure");
      box.className = "chart-box";
      box.setAttribute("data-key", key);
      var canvas = document.createElement("canvas");
      canvas.setAttribute("role", "img");
      canvas.setAttribute("aria-label", "Chart of " + key + " by step, one line per run");
      box.appendChild(canvas);
      grids[group].appendChild(box);
      var datasets = [];
      runs.forEach(function (run, index) {
        var points = run.series[key];
        if (!points) return;
        var colour = COLOURS[index % COLOURS.length];
        datasets.push({
          label: run.label, borderColor: colour, backgroundColor: colour, borderWidth: 1.5, tension: 0,
          pointRadius: points.length <= 12 ? 2.5 : 0, pointHoverRadius: 4,
          data: points.map(function (p) { return { x: p[0], y: p[1] }; })
        });
      });
      new window.Chart(canvas, {
        type: "line",
        data: { datasets: datasets },
        options: {
          animation: false, parsing: false, maintainAspectRatio: false,
          interaction: { mode: "nearest", intersect: false },
          scales: { x: { type: "linear", ticks: { precision: 0 }, title: { display: true, text: "step" } }, y: { type: "linear", ticks: { callback: tick } } },
          plugins: { title: { display: true, text: key }, legend: { display: true, position: "bottom", labels: { boxWidth: 10, font: { size: 11 } } } }
        }
      });
    });
  }

  function start() {
    var root = document.getElementById("compare-charts");
    if (!root || !window.Chart) return;
    fetch(root.getAttribute("data-series-url"), { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (payload) { draw(root, payload.runs || []); })
      .catch(function () {
        var empty = root.querySelector(".charts-empty");
        if (empty) empty.textContent = "The metrics could not be loaded; reload the page to try again.";
      });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
