/* ymir hub: diagnosis and analysis charts (Chart.js, vendored). Data comes embedded as JSON. */
"use strict";
var ymirDiagnosis = (function () {
  var COLORS = ["#2f6fde", "#d62728", "#1e9e3a", "#ff9f1a", "#8e44ad", "#17becf", "#7f7f7f", "#bcbd22"];

  function read(node) {
    if (!node) return null;
    try { return JSON.parse(node.textContent); } catch (e) { return null; }
  }

  function line(canvas, labels, datasets, xTitle, yTitle) {
    if (!canvas || !window.Chart) return null;
    return new Chart(canvas, {
      type: "line",
      data: { labels: labels, datasets: datasets },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        elements: { point: { radius: 0 } },
        scales: {
          x: { type: "linear", min: 0, max: 1, title: { display: true, text: xTitle } },
          y: { min: 0, max: 1, title: { display: true, text: yTitle } }
        }
      }
    });
  }

  function points(xs, ys) {
    return xs.map(function (x, i) { return { x: x, y: ys[i] }; });
  }

  /* Diagnosis: one PR chart per class (evaluations overlaid), one confidence sweep chart. */
  function diagnosis(node) {
    var evals = read(node);
    if (!evals || !evals.length) return;
    var sweep = [];
    evals.forEach(function (e, i) {
      var c = COLORS[i % COLORS.length], s = e.sweep;
      sweep.push({ label: e.label + " F1", data: points(s.conf, s.f1), borderColor: c, borderWidth: 2 });
      sweep.push({ label: e.label + " precision", data: points(s.conf, s.precision), borderColor: c,
                   borderDash: [6, 3], borderWidth: 1 });
      sweep.push({ label: e.label + " recall", data: points(s.conf, s.recall), borderColor: c,
                   borderDash: [2, 2], borderWidth: 1 });
    });
    line(document.getElementById("sweep-chart"), null, sweep, "confidence", "value");
    document.querySelectorAll("canvas.pr-chart").forEach(function (canvas) {
      var name = canvas.dataset.class, sets = [];
      evals.forEach(function (e, i) {
        var curve = e.curves[name];
        if (!curve) return;
        sets.push({ label: e.label + " (AP " + (curve.ap < 0 ? "–" : curve.ap.toFixed(3)) + ")",
                    data: points(e.recall, curve.precision), borderColor: COLORS[i % COLORS.length],
                    borderWidth: 2, stepped: true });
      });
      line(canvas, null, sets, "recall", "precision");
    });
  }

  /* Analysis: every histogram as a bar chart, versions overlaid; class proportion likewise. */
  function analysis(node) {
    var versions = read(node);
    if (!versions || !versions.length || !window.Chart) return;
    document.querySelectorAll("canvas.hist-chart").forEach(function (canvas) {
      var part = canvas.dataset.part, name = canvas.dataset.name, labels = null;
      var sets = versions.map(function (v, i) {
        var h = v[part][name];
        labels = labels || h.labels;
        return { label: v.label, data: h.counts, backgroundColor: COLORS[i % COLORS.length] + "99",
                 borderColor: COLORS[i % COLORS.length], borderWidth: 1 };
      });
      new Chart(canvas, { type: "bar", data: { labels: labels, datasets: sets },
        options: { animation: false, responsive: true, maintainAspectRatio: false,
                   scales: { y: { beginAtZero: true } } } });
    });
    var prop = document.querySelector("canvas.prop-chart");
    if (prop) {
      var names = [];
      versions.forEach(function (v) {
        Object.keys(v.proportion).forEach(function (k) { if (names.indexOf(k) < 0) names.push(k); });
      });
      names.sort();
      new Chart(prop, { type: "bar", data: { labels: names, datasets: versions.map(function (v, i) {
        return { label: v.label, data: names.map(function (k) { return v.proportion[k] || 0; }),
                 backgroundColor: COLORS[i % COLORS.length] + "99", borderColor: COLORS[i % COLORS.length],
                 borderWidth: 1 };
      }) }, options: { animation: false, responsive: true, maintainAspectRatio: false,
                       scales: { y: { beginAtZero: true, max: 1 } } } });
    }
  }

  return { diagnosis: diagnosis, analysis: analysis };
})();
