// Reward-model suggestions on the fine-grained page (templates/annotation/annotate/_suggestions.html).
//
// One suggestion at a time has the focus (n / p, or a click on its outline or
// its row). With it: a type key (1-5) accepts it whole, or, when words inside
// it are selected, trims it to those words; x dismisses it. Every answer is
// one draft operation (accept_suggestion, trim_suggestion, dismiss_suggestion)
// sent through annotate.js's draft endpoint; the server records it and
// re-renders the outlines and the list. Runs before annotate.js's own keys
// (capture phase), and leaves them alone when no suggestion has the focus.
(() => {
  "use strict";
  const api = window.granaryAnnotate;
  const box = document.getElementById("fg-response-text");
  if (!api || !box) return;
  const TYPE_BY_KEY = {};
  document.querySelectorAll(".type-btn").forEach((b) => { TYPE_BY_KEY[b.dataset.key] = b.dataset.type; });

  let current = null; // id (string) of the focused suggestion
  let currentPosition = 0; // its place in the list, to move on to the next one once it is answered

  const rows = () => Array.from(document.querySelectorAll("#fg-suggestions .sug-item"));
  const rowOf = (id) => document.querySelector(`#fg-suggestions .sug-item[data-sug-id="${id}"]`);
  const covers = (element, id) => (element.dataset.sug || "").split(" ").includes(String(id));

  function show() {
    document.querySelectorAll(".is-focused").forEach((el) => {
      if (el.matches(".sug, .sug-item")) el.classList.remove("is-focused");
    });
    if (current === null) return;
    const row = rowOf(current);
    if (row) row.classList.add("is-focused");
    box.querySelectorAll(".sug").forEach((piece) => { if (covers(piece, current)) piece.classList.add("is-focused"); });
  }

  function focusSuggestion(id, scroll) {
    current = id === null ? null : String(id);
    const list = rows();
    const row = current && rowOf(current);
    currentPosition = row ? list.indexOf(row) : 0;
    show();
    if (row && scroll) {
      const first = box.querySelector(".sug.is-focused");
      (first || row).scrollIntoView({ block: "nearest" });
      row.scrollIntoView({ block: "nearest" });
    }
    if (row) {
      const what = row.querySelector(".span-snippet");
      api.say(`Suggestion ${list.indexOf(row) + 1} of ${list.length}: “${what ? what.textContent : ""}”. A type key accepts, x dismisses.`, false);
    }
  }

  function step(direction) {
    const list = rows();
    if (!list.length) {
      api.say("No open suggestions.", false);
      return;
    }
    const at = current ? list.indexOf(rowOf(current)) : -1;
    const next = at < 0 ? (direction > 0 ? 0 : list.length - 1) : (at + direction + list.length) % list.length;
    focusSuggestion(list[next].dataset.sugId, true);
  }

  function answer(id, type) {
    const row = rowOf(id);
    if (!row) return;
    const start = Number(row.dataset.start);
    const end = Number(row.dataset.end);
    const selected = api.selectionOffsets();
    window.getSelection().removeAllRanges();
    if (selected && selected.start >= start && selected.end <= end && (selected.start > start || selected.end < end)) {
      api.send({ op: "trim_suggestion", suggestion: id, type, start: selected.start, end: selected.end });
    } else {
      api.send({ op: "accept_suggestion", suggestion: id, type });
    }
  }

  function dismiss(id) {
    api.send({ op: "dismiss_suggestion", suggestion: id });
  }

  // A selection outside the focused suggestion is an ordinary new span: annotate.js handles it.
  function selectionInside(id) {
    const row = rowOf(id);
    const selected = api.selectionOffsets();
    if (!row || !selected) return true;
    return selected.start >= Number(row.dataset.start) && selected.end <= Number(row.dataset.end);
  }

  window.addEventListener("keydown", (event) => {
    const target = event.target;
    if (target.closest && target.closest("input, textarea, select, [contenteditable]")) return;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "Escape") {
      current = null;
      show();
      return;
    }
    if (event.key === "n" || event.key === "p") {
      if (!document.getElementById("fg-suggestions") || !rows().length) return;
      event.preventDefault();
      event.stopImmediatePropagation();
      step(event.key === "n" ? 1 : -1);
      return;
    }
    if (current === null || !rowOf(current)) return;
    const type = TYPE_BY_KEY[event.key];
    if (type && selectionInside(current)) {
      event.preventDefault();
      event.stopImmediatePropagation();
      answer(current, type);
    } else if (event.key === "x" || event.key === "X") {
      event.preventDefault();
      event.stopImmediatePropagation();
      dismiss(current);
    }
  }, true);

  // Clicks: an outline focuses its (innermost) suggestion; the row's buttons answer it.
  box.addEventListener("click", (event) => {
    const piece = event.target.closest(".sug");
    if (!piece || !window.getSelection().isCollapsed) return;
    const ids = piece.dataset.sug.split(" ");
    const sized = ids.map((id) => [id, rowOf(id)]).filter(([, row]) => row)
      .sort((a, b) => (a[1].dataset.end - a[1].dataset.start) - (b[1].dataset.end - b[1].dataset.start));
    if (sized.length) focusSuggestion(sized[0][0], false);
  });
  document.addEventListener("click", (event) => {
    const accept = event.target.closest("button[data-sug-accept]");
    const dismissButton = event.target.closest("button[data-sug-dismiss]");
    if (accept) {
      focusSuggestion(accept.dataset.sugAccept, false);
      answer(accept.dataset.sugAccept, accept.dataset.type);
    } else if (dismissButton) {
      focusSuggestion(dismissButton.dataset.sugDismiss, false);
      dismiss(dismissButton.dataset.sugDismiss);
    } else {
      const row = event.target.closest(".sug-item");
      if (row) focusSuggestion(row.dataset.sugId, false);
    }
  });
  // Keep the selection when a button is pressed with the mouse (a trim made with a click).
  document.addEventListener("mousedown", (event) => {
    if (event.target.closest("button[data-sug-accept]")) event.preventDefault();
  });

  // After the server re-rendered the outlines and the list: keep the focus, or move on to the next open one.
  function settle() {
    if (current !== null && !rowOf(current)) {
      const list = rows();
      current = list.length ? list[Math.min(currentPosition, list.length - 1)].dataset.sugId : null;
    }
    show();
  }
  document.body.addEventListener("htmx:afterSettle", settle);
  document.body.addEventListener("htmx:oobAfterSwap", settle);
})();
