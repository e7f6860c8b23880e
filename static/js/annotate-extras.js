// Annotation pages, team side: report the time the page is in use (time per item on the campaign page),
// and open or close the guidelines panel with "g".
//
// A second counts when the tab is visible and the annotator did something
// (key, pointer, scroll) in the last minute; the page sends what it counted
// every 20 seconds and when it is left, so a tab left open counts nothing.
(() => {
  "use strict";
  const bar = document.getElementById("team-bar");
  if (!bar) return;
  const url = bar.dataset.timeUrl;
  const csrf = (document.querySelector("input[name=csrfmiddlewaretoken]") || {}).value || "";
  const IDLE_MS = 60_000;
  let lastActivity = Date.now();
  let unsent = 0;

  ["keydown", "pointerdown", "pointermove", "scroll", "input"].forEach((name) =>
    window.addEventListener(name, () => { lastActivity = Date.now(); }, { passive: true, capture: true }));

  setInterval(() => {
    if (document.visibilityState === "visible" && Date.now() - lastActivity < IDLE_MS) unsent += 1;
    bar.dataset.unsent = String(unsent); // for the browser tests, which wait on it
  }, 1000);

  function body() {
    const data = new FormData();
    data.append("csrfmiddlewaretoken", csrf);
    data.append("seconds", String(unsent));
    unsent = 0;
    return data;
  }

  function report() {
    if (unsent <= 0) return;
    fetch(url, { method: "POST", body: body(), credentials: "same-origin", headers: { "X-CSRFToken": csrf } }).catch(() => {});
  }

  setInterval(report, 20_000);

  // The guidelines panel: "g" opens or closes it (outside text fields), Escape closes it.
  const guidelines = document.getElementById("guidelines-panel");
  document.addEventListener("keydown", (event) => {
    if (!guidelines || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "Escape" && guidelines.open) {
      guidelines.open = false;
      return;
    }
    const target = event.target;
    if (target.closest && target.closest("input, textarea, select, [contenteditable]")) return;
    if (event.key === "g") {
      event.preventDefault();
      guidelines.open = !guidelines.open;
      if (guidelines.open) guidelines.querySelector("summary").focus();
    }
  });
  // Leaving the page (submit, skip, close): the beacon outlives it.
  window.addEventListener("pagehide", () => { if (unsent > 0) navigator.sendBeacon(url, body()); });
  document.addEventListener("visibilitychange", () => { if (document.visibilityState === "hidden") report(); });
})();
