// Review page: the gold-version form works without this; it adds "use this correction", keyboard shortcuts,
// moving a span's ends a word at a time and drawing spans no annotator marked.
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

  // ---- span bounds, a word at a time, and spans drawn by the reviewer (offsets are the server's code points) ----
  const wordsData = document.getElementById("rv-words");
  const words = wordsData ? JSON.parse(wordsData.textContent) : [];
  const spanList = document.getElementById("rv-spans");
  const draw = document.getElementById("rv-draw");
  const answer = document.getElementById("rv-answer");
  const starts = words.map((w) => w.start);
  const ends = words.map((w) => w.end);

  // The text of [start, end) rebuilt from the words, as the server cut it (Django's truncatechars: 120).
  function snippet(start, end) {
    const text = words.filter((w) => w.start >= start && w.end <= end)
      .map((w, i, all) => w.text + (i < all.length - 1 ? w.space : "")).join("");
    const chars = Array.from(text);
    return chars.length > 120 ? chars.slice(0, 119).join("") + "…" : text;
  }

  function setBounds(row, start, end) {
    row.querySelector(".rv-start").value = start;
    row.querySelector(".rv-end").value = end;
    row.querySelector(".rv-snippet").textContent = snippet(start, end);
    row.querySelector(".rv-bounds").textContent = `${start}–${end}`;
    row.classList.add("is-moved");
    const box = row.querySelector("input[name=span]");
    if (!box.checked) box.click(); // a moved span is meant for the gold version
  }

  // Move one end of a row's span to the next word boundary in `by`'s direction, never past the other end.
  function nudge(row, which, by) {
    const start = Number(row.querySelector(".rv-start").value);
    const end = Number(row.querySelector(".rv-end").value);
    if (which === "start") {
      const next = by < 0 ? starts.filter((s) => s < start).pop() : starts.find((s) => s > start && s < end);
      if (next !== undefined) setBounds(row, next, end);
    } else {
      const next = by > 0 ? ends.find((e) => e > end) : ends.filter((e) => e < end && e > start).pop();
      if (next !== undefined) setBounds(row, start, next);
    }
  }

  function drawMessage(message, isError) {
    const region = document.getElementById("rv-draw-message");
    region.textContent = message;
    region.classList.toggle("error", Boolean(isError));
  }

  // The words of the answer the selection touches, as [start, end], or null.
  function selectedWords() {
    const selection = window.getSelection();
    if (!selection || selection.rangeCount === 0 || selection.isCollapsed) return null;
    const touched = Array.from(answer.querySelectorAll(".rv-aw")).filter((w) => selection.containsNode(w, true));
    if (!touched.length) return null;
    return [Number(touched[0].dataset.start), Number(touched[touched.length - 1].dataset.end)];
  }

  function addOwnSpan() {
    const bounds = selectedWords();
    if (!bounds) {
      drawMessage("Select one or more words of response 1 first.", true);
      return;
    }
    const taken = Array.from(spanList.querySelectorAll("li[data-key^='own:']")).map((li) => Number(li.dataset.key.slice(4)));
    const key = `own:${taken.length ? Math.max(...taken) + 1 : 0}`;
    const row = document.getElementById("rv-own-row").content.firstElementChild.cloneNode(true);
    row.dataset.key = key;
    const box = row.querySelector("input[name=span]");
    box.value = key;
    row.querySelector(".rv-start").name = `start-${key}`;
    row.querySelector(".rv-end").name = `end-${key}`;
    const type = row.querySelector("select");
    type.name = type.id = `type-${key}`;
    row.querySelector("label[for]").htmlFor = type.id;
    type.value = document.getElementById("rv-new-type").value;
    row.querySelector(".rv-nudge").hidden = false;
    const empty = document.getElementById("rv-no-spans");
    if (empty) empty.remove();
    const after = Array.from(spanList.children).find((li) => Number(li.querySelector(".rv-start").value) > bounds[0]);
    spanList.insertBefore(row, after || null);
    setBounds(row, bounds[0], bounds[1]);
    window.getSelection().removeAllRanges();
    drawMessage(`Added your span “${snippet(bounds[0], bounds[1])}”.`, false);
    box.focus();
  }

  if (draw && spanList) {
    draw.hidden = false;
    spanList.querySelectorAll(".rv-nudge").forEach((el) => { el.hidden = false; });
    spanList.addEventListener("click", (event) => {
      const button = event.target.closest("[data-nudge]");
      if (button) nudge(button.closest("li"), button.dataset.nudge, Number(button.dataset.by));
    });
    document.getElementById("rv-add-span").addEventListener("click", addOwnSpan);
  }

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
    } else if (at >= 0 && draw && "hHlL".includes(event.key) && event.key.length === 1) {
      // h/l widen the focused span a word to the left/right; H/L narrow it from that side.
      event.preventDefault();
      const row = list[at].closest("li");
      if (event.key === "h") nudge(row, "start", -1);
      else if (event.key === "H") nudge(row, "start", 1);
      else if (event.key === "l") nudge(row, "end", 1);
      else nudge(row, "end", -1);
    }
  });
})();
