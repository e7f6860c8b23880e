// New pipeline form: warn while the eval split equals the train split (the server shows it too on a prefilled form).
(function () {
  "use strict";
  function update() {
    var train = document.getElementById("id_train_split");
    var evaluation = document.getElementById("id_eval_split");
    var warning = document.getElementById("same-splits-warning");
    if (!train || !evaluation || !warning) return;
    var same = train.value.trim() !== "" && train.value.trim() === evaluation.value.trim();
    warning.hidden = !same;
  }
  document.addEventListener("input", function (event) {
    if (event.target && (event.target.id === "id_train_split" || event.target.id === "id_eval_split")) update();
  });
  document.addEventListener("DOMContentLoaded", update);
})();
