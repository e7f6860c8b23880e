// Review page: the gold-version form works without this; it adds "use this correction" and keyboard shortcuts.
(() => {
  "use strict";
  const form = document.getElementById("gold-form");
  if (!form) return;
  const correction = document.getElementById("rv-correction");
  const data = document.getElementById("rv-corrections");
  const corrections = data ? JSON.parse(data.textContent) : [];

  function useCorrection(index) {
    if (!correction || corrections[index] === undefined) return;
    correction.value = corrections[index];
    correction.focus();
  }

  document.querySelectorAll("[data-use-correction]").forEach((button) =>
    button.addEventListener("click", () => useCorrection(Number(button.dataset.useCorrection))));

  const boxes = () => Array.from(document.querySelectorAll("#rv-spans input[name=span]"));
  const typing = (el) => el && (el.matches("textarea, input[type=text], select") || el.isContentEditable);

  document.addEventListener("keydown", (event) => {
    if ((event.ctrlKey || event.metaKey) && event.key === "Enter") {
      event.preventDefault();
      form.requestSubmit(document.getElementById("rv-save"));
      return;
    }
    if (event.altKey && /^[1-6]$/.test(event.key)) {
      event.preventDefault();
      useCorrection(Number(event.key) - 1);
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey || typing(document.activeElement)) return;
    const list = boxes();
    const at = list.indexOf(document.activeElement);
    if (event.key === "j" || event.key === "k") {
      if (!list.length) return;
      event.preventDefault();
      const next = at < 0 ? 0 : Math.max(0, Math.min(list.length - 1, at + (event.key === "j" ? 1 : -1)));
      list[next].focus();
      list[next].closest("li").scrollIntoView({ block: "nearest" });
    } else if (event.key === "x" && at >= 0) {
      event.preventDefault();
      list[at].click();
    }
  });
})();
