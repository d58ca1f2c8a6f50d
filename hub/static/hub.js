/* ymir hub: a little plain JS (no frameworks, no CDN). */
"use strict";
var ymir = (function () {
  function sourcePicker(form) {
    if (!form) return;
    function update() {
      var chosen = form.querySelector("input[name=source]:checked").value;
      form.querySelectorAll("[data-source]").forEach(function (el) {
        el.hidden = el.getAttribute("data-source") !== chosen;
      });
    }
    form.querySelectorAll("input[name=source]").forEach(function (r) { r.addEventListener("change", update); });
    update();
  }

  function pollProgress(card) {
    if (!card) return;
    var url = card.getAttribute("data-poll");
    var bar = document.getElementById("progress");
    var text = document.getElementById("progress-text");
    function tick() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.json(); })
        .then(function (v) {
          if (v.state && v.state !== "importing") { window.location.reload(); return; }
          bar.value = v.progress || 0;
          text.textContent = Math.round((v.progress || 0) * 100) + "% " + (v.progress_message || "");
          setTimeout(tick, 700);
        })
        .catch(function () { setTimeout(tick, 2000); });
    }
    setTimeout(tick, 300);
  }

  return { sourcePicker: sourcePicker, pollProgress: pollProgress };
})();
