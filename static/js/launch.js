// The launch form: warn while the eval split is the train split (the server warns again after launch).
(function () {
  "use strict";

  function check() {
    var warning = document.getElementById("split-warning");
    var dataset = document.getElementById("id_dataset");
    var train = document.getElementById("id_train_split");
    var evaluation = document.getElementById("id_eval_split");
    if (!warning || !train || !evaluation) return;
    var same = (!dataset || dataset.value !== "") && train.value.trim() !== "" && train.value.trim() === evaluation.value.trim();
    warning.hidden = !same;
  }

  document.addEventListener("input", function (event) {
    if (event.target && /^id_(train_split|eval_split|dataset)$/.test(event.target.id)) check();
  });
  document.addEventListener("change", function (event) {
    if (event.target && event.target.id === "id_dataset") check();
  });
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", check);
  else check();
})();
