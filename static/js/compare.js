// Comparison page: answer the six pairwise questions from the keyboard.
// a = first better, b = second better, e = equal; each answer moves to the
// next question, the last one to the Submit button. The form autosaves on
// every change (htmx), so nothing here talks to the server.
(() => {
  "use strict";
  const form = document.getElementById("cmp-form");
  if (!form) return;
  const pairs = Array.from(form.querySelectorAll(".pair"));
  const submit = document.getElementById("cmp-submit");
  const KEYS = { a: "first", b: "second", e: "equal" };
  let submitting = false;

  function focusPair(pair) {
    const radio = pair.querySelector("input:checked") || pair.querySelector("input");
    radio.focus();
  }

  function currentPair() {
    const inside = document.activeElement && document.activeElement.closest && document.activeElement.closest(".pair");
    return inside || pairs.find((pair) => !pair.querySelector("input:checked")) || null;
  }

  function highlight(pair) {
    pairs.forEach((p) => p.classList.toggle("is-current", p === pair));
    document.querySelectorAll(".cmp-response").forEach((card) => {
      card.classList.toggle("is-first", !!pair && card.dataset.number === pair.dataset.a);
      card.classList.toggle("is-second", !!pair && card.dataset.number === pair.dataset.b);
    });
  }

  form.addEventListener("focusin", (event) => highlight(event.target.closest(".pair")));
  form.addEventListener("change", (event) => {
    const pair = event.target.closest(".pair");
    if (pair) pair.classList.add("is-answered");
  });

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (target.closest && target.closest("textarea, input[type=text], select")) return;
    const key = event.key.toLowerCase();
    if (KEYS[key]) {
      const pair = currentPair();
      if (!pair) return;
      event.preventDefault();
      const radio = pair.querySelector(`input[value="${KEYS[key]}"]`);
      if (!radio.checked) radio.click(); // click() fires the change event that autosaves
      const next = pairs[pairs.indexOf(pair) + 1];
      if (next) focusPair(next);
      else submit.focus();
    } else if (key === "j" || key === "k") {
      event.preventDefault();
      const pair = currentPair() || pairs[pairs.length - 1];
      const next = pairs[pairs.indexOf(pair) + (key === "j" ? 1 : -1)];
      if (next) focusPair(next);
      else if (key === "j") submit.focus();
    }
  });

  // While a submit is on its way, the change-triggered autosave would only race it.
  submit.addEventListener("click", () => { submitting = true; });
  document.body.addEventListener("htmx:beforeRequest", (event) => {
    if (submitting && event.detail.elt === form) event.preventDefault();
  });
  document.body.addEventListener("htmx:afterRequest", (event) => {
    const xhr = event.detail.xhr;
    if (event.detail.elt === submit && (!xhr || xhr.status === 0 || xhr.status >= 400)) submitting = false;
  });

  const skipForm = document.getElementById("skip-form");
  skipForm.addEventListener("submit", (event) => {
    if (!window.confirm(skipForm.dataset.confirm)) event.preventDefault();
  });

  // Start where work is left: the first unanswered question, else Submit.
  const first = pairs.find((pair) => !pair.querySelector("input:checked"));
  if (first) focusPair(first);
  else submit.focus();
  document.body.dataset.js = "ready";
})();
