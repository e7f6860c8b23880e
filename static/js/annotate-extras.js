// Annotation pages, team side: report the time the page is in use (time per item on the campaign page).
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
  // Leaving the page (submit, skip, close): the beacon outlives it.
  window.addEventListener("pagehide", () => { if (unsent > 0) navigator.sendBeacon(url, body()); });
  document.addEventListener("visibilitychange", () => { if (document.visibilityState === "hidden") report(); });
})();
