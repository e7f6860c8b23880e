// Fine-grained feedback page.
//
// The server owns the draft: every edit is one htmx request that carries the
// form (free-text fields included) plus an operation, and the answer swaps in
// the regions that changed. This script only does what needs the browser:
// text selection to character offsets, keyboard handling, remembering which
// sentences are being picked, and the undo and redo stacks of span edits
// (each holding operations the server computed, sent back through it).
(() => {
  "use strict";
  const form = document.getElementById("fg-form");
  if (!form || !window.htmx) return;

  const draftUrl = form.dataset.draftUrl;
  const text = JSON.parse(document.getElementById("fg-response-data").textContent);
  const words = JSON.parse(document.getElementById("fg-words-data").textContent);
  const box = document.getElementById("fg-response-text");
  const banner = document.getElementById("pick-banner");
  const passagesPanel = document.querySelector(".fg-passages");
  const pickedBox = document.getElementById("missing-picked");
  const addMissingButton = document.getElementById("missing-add");
  const correction = document.getElementById("fg-correction");
  const TYPE_BY_KEY = {};
  document.querySelectorAll(".type-btn").forEach((b) => { TYPE_BY_KEY[b.dataset.key] = b.dataset.type; });

  let kb = null; // keyboard selection: {anchor, focus} word indices
  let pick = null; // citing sentences for an Inconsistent Fact span: {index, passage, sentences}
  const missing = { passage: null, sentences: [] }; // the missing-info entry being built
  let dirty = false;
  let submitting = false;
  let inFlight = 0; // draft requests sent and not yet answered
  const submitButton = document.getElementById("fg-submit");

  // ---- offsets: the server counts code points, the DOM counts UTF-16 units ----
  const cpLength = (s) => Array.from(s).length;
  const u16Length = (s, codePoints) => Array.from(s).slice(0, codePoints).join("").length;
  const textLength = cpLength(text);

  function pointToOffset(node, offset) {
    if (node === box) {
      const child = box.childNodes[offset];
      return child ? Number(child.dataset.start) : textLength;
    }
    const element = node.nodeType === Node.TEXT_NODE ? node.parentElement : node;
    const segment = element && element.closest("[data-start]");
    if (!segment || !box.contains(segment)) return null;
    const start = Number(segment.dataset.start);
    if (node.nodeType === Node.TEXT_NODE) return start + cpLength(node.data.slice(0, offset));
    return offset === 0 ? start : Number(segment.dataset.end);
  }

  function offsetToPoint(offset) {
    for (const segment of box.querySelectorAll("[data-start]")) {
      const start = Number(segment.dataset.start);
      if (offset >= start && offset <= Number(segment.dataset.end)) {
        const node = segment.firstChild;
        return node ? [node, u16Length(node.data, offset - start)] : [segment, 0];
      }
    }
    return [box, box.childNodes.length];
  }

  // The current selection as {start, end} code-point offsets into the response, or null.
  function selectionOffsets() {
    const selection = window.getSelection();
    if (!selection || selection.rangeCount === 0 || selection.isCollapsed) return null;
    const range = selection.getRangeAt(0);
    if (!range.intersectsNode(box)) return null;
    const whole = document.createRange();
    whole.selectNodeContents(box);
    const start = range.compareBoundaryPoints(Range.START_TO_START, whole) <= 0 ? 0 : pointToOffset(range.startContainer, range.startOffset);
    const end = range.compareBoundaryPoints(Range.END_TO_END, whole) >= 0 ? textLength : pointToOffset(range.endContainer, range.endOffset);
    if (start === null || end === null || end <= start) return null;
    return { start, end };
  }

  function selectOffsets(start, end) {
    const [startNode, startOffset] = offsetToPoint(start);
    const [endNode, endOffset] = offsetToPoint(end);
    window.getSelection().setBaseAndExtent(startNode, startOffset, endNode, endOffset);
  }

  // ---- talking to the server ----
  function send(values) {
    return htmx.ajax("POST", draftUrl, { source: form, values, swap: "none" });
  }

  function say(message, isError) {
    const region = document.getElementById("fg-message");
    region.textContent = message;
    region.className = "fg-message " + (isError ? "is-error" : "is-ok");
  }

  // For static/js/suggest.js (answers to reward-model suggestions go through the same draft endpoint).
  window.granaryAnnotate = { send, say, selectionOffsets };

  function addSpan(type) {
    const range = selectionOffsets();
    if (!range) {
      say("Select one or more words in the response first.", true);
      box.focus();
      return;
    }
    window.getSelection().removeAllRanges();
    kb = null;
    send({ op: "add_span", start: range.start, end: range.end, type });
  }

  function focusedSpanIndex() {
    const active = document.activeElement;
    return active && active.matches && active.matches("mark.err[data-index]") ? Number(active.dataset.index) : null;
  }

  // ---- keyboard selection by word inside the response ----
  function wordIndexAt(offset, fromEnd) {
    if (fromEnd) {
      for (let i = words.length - 1; i >= 0; i--) if (words[i][0] < offset) return i;
      return 0;
    }
    const i = words.findIndex((w) => w[1] > offset);
    return i < 0 ? words.length - 1 : i;
  }

  function showKeyboardSelection() {
    const lo = Math.min(kb.anchor, kb.focus);
    const hi = Math.max(kb.anchor, kb.focus);
    selectOffsets(words[lo][0], words[hi][1]);
  }

  box.addEventListener("keydown", (event) => {
    if (event.target !== box || !words.length || event.ctrlKey || event.metaKey || event.altKey) return;
    const step = { ArrowRight: 1, ArrowLeft: -1, Home: -Infinity, End: Infinity }[event.key];
    if (step === undefined) return;
    event.preventDefault();
    const clamp = (i) => Math.max(0, Math.min(words.length - 1, i));
    if (kb === null) {
      const current = selectionOffsets();
      if (current) {
        kb = { anchor: wordIndexAt(current.start, false), focus: wordIndexAt(current.end, true) };
      } else {
        kb = { anchor: 0, focus: 0 };
        showKeyboardSelection();
        return;
      }
    }
    if (event.shiftKey) {
      kb.focus = clamp(kb.focus + step);
    } else {
      const next = clamp(kb.focus + step);
      kb = { anchor: next, focus: next };
    }
    showKeyboardSelection();
  });
  box.addEventListener("mousedown", () => { kb = null; });

  // ---- marks: click selects, Delete removes, 1-5 retypes ----
  box.addEventListener("click", (event) => {
    const mark = event.target.closest("mark.err");
    if (mark && window.getSelection().isCollapsed) {
      mark.focus();
    }
  });
  box.addEventListener("focusin", (event) => {
    const mark = event.target.closest("mark.err");
    document.querySelectorAll(".span-item.is-selected").forEach((li) => li.classList.remove("is-selected"));
    if (mark) {
      const item = document.querySelector(`.span-item[data-index="${mark.dataset.index}"]`);
      if (item) item.classList.add("is-selected");
    }
  });

  // Ctrl (⌘ on a Mac) shortcuts: Ctrl+Enter submits from anywhere; Ctrl+Z and
  // Ctrl+Shift+Z / Ctrl+Y undo and redo span edits, except in a text box,
  // where they undo typing as usual.
  document.addEventListener("keydown", (event) => {
    if (!(event.ctrlKey || event.metaKey) || event.altKey) return;
    const key = event.key.toLowerCase();
    if (key === "enter") {
      event.preventDefault();
      submitButton.click(); // the button's own request, with its checks on the server
      return;
    }
    if (key !== "z" && key !== "y") return;
    const target = event.target;
    if (target.closest && target.closest("input[type=text], textarea, [contenteditable]")) return;
    event.preventDefault();
    travel(key === "y" || event.shiftKey ? "redo" : "undo");
  });

  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      if (pick) stopPicking();
      window.getSelection().removeAllRanges();
      kb = null;
      return;
    }
    const target = event.target;
    if (target.closest && target.closest("input, textarea, select, [contenteditable]")) return;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const type = TYPE_BY_KEY[event.key];
    const spanIndex = focusedSpanIndex();
    if (type) {
      event.preventDefault();
      if (spanIndex !== null && !selectionOffsets()) {
        send({ op: "retype_span", index: spanIndex, type });
      } else {
        addSpan(type);
      }
    } else if ((event.key === "Delete" || event.key === "Backspace") && spanIndex !== null) {
      event.preventDefault();
      send({ op: "remove_span", index: spanIndex });
      box.focus();
    }
  });

  document.querySelectorAll(".type-btn").forEach((button) => {
    // Keep the text selection: a mousedown on a button would otherwise clear it.
    button.addEventListener("mousedown", (event) => event.preventDefault());
    button.addEventListener("click", () => {
      const spanIndex = focusedSpanIndex();
      if (spanIndex !== null && !selectionOffsets()) send({ op: "retype_span", index: spanIndex, type: button.dataset.type });
      else addSpan(button.dataset.type);
    });
  });

  // ---- buttons inside the swapped lists (delegated: the lists are re-rendered) ----
  form.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-remove-span], button[data-remove-missing], button[data-pick-grounding], button[data-use-selection]");
    if (!button) return;
    if (button.dataset.removeSpan !== undefined) send({ op: "remove_span", index: button.dataset.removeSpan });
    else if (button.dataset.removeMissing !== undefined) send({ op: "remove_missing", index: button.dataset.removeMissing });
    else if (button.dataset.pickGrounding !== undefined) startPicking(Number(button.dataset.pickGrounding));
    else if (button.dataset.useSelection !== undefined) {
      const range = selectionOffsets();
      const input = document.getElementById(`explanation-${button.dataset.useSelection}`);
      if (!range) { say("Select the earlier words in the response first, then press “Use selection”.", true); return; }
      input.value = Array.from(text).slice(range.start, range.end).join("");
      input.dispatchEvent(new Event("input", { bubbles: true }));
      window.getSelection().removeAllRanges();
    }
  });
  form.addEventListener("mousedown", (event) => {
    if (event.target.closest("button[data-use-selection]")) event.preventDefault();
  });

  // Enter in a one-line field must not submit the whole annotation.
  form.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && event.target.matches("input[type=text]")) event.preventDefault();
  });

  // ---- passage sentences: cite for an Inconsistent Fact, or collect for missing info ----
  function startPicking(index) {
    const item = document.querySelector(`.span-item[data-index="${index}"]`);
    pick = { index, passage: null, sentences: [] };
    if (item && item.dataset.groundingP) {
      pick.passage = Number(item.dataset.groundingP);
      pick.sentences = item.dataset.groundingS.split(" ").map(Number);
    }
    passagesPanel.classList.add("picking");
    banner.hidden = false;
    banner.innerHTML = "";
    banner.append(`Click the passage sentence that span ${index + 1} contradicts (Shift+click adds another).`);
    const cancel = document.createElement("button");
    cancel.type = "button";
    cancel.className = "btn btn-small";
    cancel.textContent = "Done";
    cancel.addEventListener("click", stopPicking);
    banner.append(cancel);
    const current = passagesPanel.querySelector(".sent[role=button][tabindex='0']");
    if (current && !passagesPanel.contains(document.activeElement)) current.focus({ preventScroll: true });
    markSentences();
  }

  function stopPicking() {
    pick = null;
    banner.hidden = true;
    passagesPanel.classList.remove("picking");
    markSentences();
  }

  function chooseSentence(sentence, extend) {
    const p = Number(sentence.dataset.p);
    const s = Number(sentence.dataset.s);
    if (pick) {
      let sentences = [s];
      if (extend && pick.passage === p) {
        sentences = pick.sentences.includes(s) ? pick.sentences.filter((x) => x !== s) : pick.sentences.concat(s);
      }
      if (!sentences.length) return;
      const index = pick.index;
      pick.passage = p;
      pick.sentences = sentences;
      send({ op: "set_grounding", index, passage_id: p, sentence_ids: sentences.join(" ") });
      if (!extend) stopPicking();
      return;
    }
    if (missing.passage !== p) {
      missing.passage = p;
      missing.sentences = [s];
    } else if (missing.sentences.includes(s)) {
      missing.sentences = missing.sentences.filter((x) => x !== s);
    } else {
      missing.sentences.push(s);
    }
    if (!missing.sentences.length) missing.passage = null;
    showMissingPick();
  }

  function showMissingPick() {
    pickedBox.innerHTML = "";
    if (!missing.sentences.length) {
      const hint = document.createElement("span");
      hint.className = "muted";
      hint.textContent = "No sentences chosen yet.";
      pickedBox.append(hint);
    } else {
      const label = document.createElement("span");
      label.textContent = `Passage ${missing.passage}:`;
      pickedBox.append(label);
      [...missing.sentences].sort((a, b) => a - b).forEach((s) => {
        const chip = document.createElement("span");
        chip.className = "chip";
        chip.textContent = `sentence ${s}`;
        pickedBox.append(chip);
      });
    }
    const type = form.querySelector("input[name=missing_type]:checked");
    addMissingButton.disabled = !(type && missing.sentences.length);
    markSentences();
  }

  passagesPanel.addEventListener("click", (event) => {
    const sentence = event.target.closest(".sent[role=button]");
    if (sentence) chooseSentence(sentence, event.shiftKey);
  });
  // The sentences are one stop in the tab order (a roving tabindex); arrow keys move between them.
  const sentences = Array.from(passagesPanel.querySelectorAll(".sent[role=button]"));
  function rove(sentence) {
    sentences.forEach((s) => { s.tabIndex = s === sentence ? 0 : -1; });
    sentence.focus();
  }
  sentences.forEach((s, i) => { s.tabIndex = i === 0 ? 0 : -1; });
  passagesPanel.addEventListener("keydown", (event) => {
    const sentence = event.target.closest(".sent[role=button]");
    if (!sentence) return;
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      chooseSentence(sentence, event.shiftKey);
      return;
    }
    const i = sentences.indexOf(sentence);
    const next = { ArrowDown: i + 1, ArrowRight: i + 1, ArrowUp: i - 1, ArrowLeft: i - 1, Home: 0, End: sentences.length - 1 }[event.key];
    if (next !== undefined && sentences[next]) {
      event.preventDefault();
      rove(sentences[next]);
    }
  });
  passagesPanel.addEventListener("focusin", (event) => {
    const sentence = event.target.closest(".sent[role=button]");
    if (sentence) sentences.forEach((s) => { s.tabIndex = s === sentence ? 0 : -1; });
  });
  form.querySelectorAll("input[name=missing_type]").forEach((radio) => radio.addEventListener("change", showMissingPick));
  addMissingButton.addEventListener("click", () => {
    const type = form.querySelector("input[name=missing_type]:checked");
    if (!type || !missing.sentences.length) return;
    send({ op: "add_missing", missing_type: type.value, passage_id: missing.passage, sentence_ids: missing.sentences.join(" ") });
  });

  // Colour the sentences that spans cite, that missing-info entries name, and that are being picked.
  function markSentences() {
    const cited = new Set();
    document.querySelectorAll("#fg-spans .span-item[data-grounding-p]").forEach((item) => {
      item.dataset.groundingS.split(" ").forEach((s) => cited.add(`${item.dataset.groundingP}.${s}`));
    });
    const listed = new Set();
    document.querySelectorAll("#fg-missing .missing-item").forEach((item) => {
      item.dataset.s.split(" ").forEach((s) => listed.add(`${item.dataset.p}.${s}`));
    });
    const picked = new Set();
    if (pick && pick.passage) pick.sentences.forEach((s) => picked.add(`${pick.passage}.${s}`));
    if (!pick && missing.passage) missing.sentences.forEach((s) => picked.add(`${missing.passage}.${s}`));
    passagesPanel.querySelectorAll(".sent").forEach((sentence) => {
      const key = `${sentence.dataset.p}.${sentence.dataset.s}`;
      sentence.classList.toggle("is-grounding", cited.has(key));
      sentence.classList.toggle("is-missing", listed.has(key));
      sentence.classList.toggle("is-picked", picked.has(key));
      sentence.setAttribute("aria-pressed", picked.has(key) ? "true" : "false");
    });
  }

  // ---- undo and redo of span edits ----
  // Every span edit's answer carries the draft operation that takes it back
  // (data-inverse, computed by the server from the draft it stored). Undo
  // sends that operation through the same draft endpoint, so the saved draft
  // always matches the page, and its answer carries the operation that
  // redoes it.
  const undoButton = document.getElementById("fg-undo");
  const redoButton = document.getElementById("fg-redo");
  const undoStack = [];
  const redoStack = [];
  let travelling = null; // the undo or redo on its way: {direction, inverse}
  const waiting = []; // presses made while edits were still on their way, taken in order

  function showHistory() {
    undoButton.disabled = !undoStack.length;
    redoButton.disabled = !redoStack.length;
  }

  function travel(direction) {
    waiting.push(direction);
    travelOn();
  }

  // Take the presses in order; an edit still on its way has not told us how to undo it yet, so wait for it.
  function travelOn() {
    while (waiting.length && !travelling && !inFlight) {
      const direction = waiting.shift();
      const inverse = (direction === "undo" ? undoStack : redoStack).pop();
      if (!inverse) {
        say(direction === "undo" ? "Nothing to undo." : "Nothing to redo.", false);
        continue;
      }
      if (pick) stopPicking();
      travelling = { direction, inverse };
      showHistory();
      send(Object.assign({}, inverse, { history: direction }));
    }
  }

  function remember(inverse, history) {
    if (history === "undo") redoStack.push(inverse);
    else if (history === "redo") undoStack.push(inverse);
    else {
      undoStack.push(inverse);
      redoStack.length = 0; // a new edit ends the redo chain
    }
    showHistory();
  }

  function arrived(status) {
    const { direction, inverse } = travelling;
    travelling = null;
    if (status === 0) {
      (direction === "undo" ? undoStack : redoStack).push(inverse); // not sent: try again later
    } else if (status === 200) {
      // Keep the keyboard where the edit happened: on the span put back, else on the response.
      const active = document.activeElement;
      if (!active || active === document.body || box.contains(active)) {
        const mark = inverse.op === "remove_span" ? null : box.querySelector(`mark.err[data-index="${inverse.index}"]`);
        (mark || box).focus({ preventScroll: true });
      }
    }
    showHistory();
  }

  undoButton.addEventListener("click", () => travel("undo"));
  redoButton.addEventListener("click", () => travel("redo"));

  // After every answer: follow up on what the server says changed.
  function afterChange() {
    const spans = document.getElementById("fg-spans");
    if (spans && spans.dataset.inverse) {
      remember(JSON.parse(spans.dataset.inverse), spans.dataset.history);
      spans.dataset.inverse = "";
    }
    const focusIndex = spans && spans.dataset.focusIndex;
    if (focusIndex) {
      spans.dataset.focusIndex = "";
      const item = spans.querySelector(`.span-item[data-index="${focusIndex}"]`);
      if (item && item.dataset.type === "Wrong-Grounding" && !item.dataset.groundingP) startPicking(Number(focusIndex));
      else if (item && item.dataset.type === "Redundant" && !item.querySelector("input[type=text]").value) {
        item.querySelector("input[type=text]").focus();
      } else if (!document.activeElement || document.activeElement === document.body) {
        // The highlight that had the focus was redrawn: give it back.
        const mark = box.querySelector(`mark.err[data-index="${focusIndex}"]`);
        if (mark) mark.focus({ preventScroll: true });
      }
    }
    const list = document.getElementById("fg-missing");
    if (list && list.dataset.justAdded) {
      list.dataset.justAdded = "";
      missing.passage = null;
      missing.sentences = [];
      showMissingPick();
    }
    markSentences();
  }

  // ---- autosave bookkeeping ----
  function setSaveStatus(state, message) {
    const status = document.querySelector("#draft-state .save-status");
    if (!status) return;
    status.dataset.state = state;
    status.textContent = message;
  }

  form.addEventListener("input", (event) => {
    if (event.target.name === "missing_type") return;
    dirty = true;
    setSaveStatus("saving", "Unsaved changes…");
  });

  document.body.addEventListener("htmx:beforeRequest", (event) => {
    const path = event.detail.requestConfig && event.detail.requestConfig.path;
    if (path === draftUrl && submitting) event.preventDefault();
  });
  document.body.addEventListener("htmx:beforeSend", (event) => {
    const config = event.detail.requestConfig;
    if (config && config.path === draftUrl) inFlight += 1;
  });
  document.body.addEventListener("htmx:afterRequest", (event) => {
    const config = event.detail.requestConfig;
    if (!config || config.path !== draftUrl) return;
    inFlight = Math.max(0, inFlight - 1);
    const status = event.detail.xhr ? event.detail.xhr.status : 0;
    if (status === 200 || status === 422) {
      dirty = false;
      document.getElementById("draft-problems").innerHTML = "";
    } else if (status === 409) {
      setSaveStatus("error", "Not saved");
    } else if (status === 0) {
      setSaveStatus("error", "Not saved: no connection. Retrying…");
      setTimeout(() => send({}), 3000);
    }
    afterChange();
    if (travelling && config.formData && config.formData.get("history")) arrived(status);
    travelOn();
  });
  document.body.addEventListener("htmx:sendError", () => setSaveStatus("error", "Not saved: no connection. Retrying…"));

  // While a submit is on its way, autosaves would only race it.
  submitButton.addEventListener("click", () => { submitting = true; });
  document.body.addEventListener("htmx:afterRequest", (event) => {
    // A refused submit leaves the page as it was: autosave resumes.
    const xhr = event.detail.xhr;
    if (event.detail.elt && event.detail.elt.id === "fg-submit" && (!xhr || xhr.status === 0 || xhr.status >= 400)) submitting = false;
  });

  // A tab closed within the autosave delay still saves what was typed.
  window.addEventListener("pagehide", () => {
    if (dirty && !submitting && navigator.sendBeacon) navigator.sendBeacon(draftUrl, new FormData(form));
  });

  document.getElementById("fg-correction-reset").addEventListener("click", () => {
    correction.value = text;
    correction.dispatchEvent(new Event("input", { bubbles: true }));
  });

  const skipForm = document.getElementById("skip-form");
  skipForm.addEventListener("submit", (event) => {
    if (!window.confirm(skipForm.dataset.confirm)) event.preventDefault();
  });

  // The sticky submit bar must never hide what the keyboard moves to: keep the
  // page's scroll padding as tall as the bar (it grows when problems are listed).
  const submitBar = document.querySelector(".submit-bar");
  if (submitBar && window.ResizeObserver) {
    new ResizeObserver(() => {
      document.documentElement.style.scrollPaddingBottom = `${submitBar.offsetHeight + 12}px`;
    }).observe(submitBar);
  }
  // Browsers scroll a focused text box only as far as its caret: bring the whole box clear of the bar.
  form.addEventListener("focusin", (event) => {
    const target = event.target;
    if (!submitBar || submitBar.contains(target) || !target.getBoundingClientRect) return;
    const rect = target.getBoundingClientRect();
    const barTop = submitBar.getBoundingClientRect().top;
    if (rect.bottom > barTop && rect.top < barTop) window.scrollBy(0, Math.min(rect.bottom - barTop + 12, rect.top - 12));
  });

  markSentences();
  // Lets tests (and anyone curious) know that keys and selections are handled from now on.
  document.body.dataset.js = "ready";
})();
