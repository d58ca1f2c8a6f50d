/* ymir hub: training pages — sample balance, live job rows, job page polling, history charts. */
"use strict";
var ymirTraining = (function () {
  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.json(); });
  }

  function balance(form) {
    if (!form) return;
    var button = document.getElementById("balance-button");
    var table = document.getElementById("balance");
    button.addEventListener("click", function () {
      var version = document.getElementById("train-version").value;
      var classes = Array.prototype.map.call(form.querySelectorAll("input[name=targets]:checked"),
        function (c) { return c.value; });
      getJSON("/api/v1/projects/" + form.dataset.project + "/sample-balance?version=" + version +
              "&classes=" + encodeURIComponent(classes.join(","))).then(function (d) {
        var body = table.querySelector("tbody");
        body.innerHTML = "";
        Object.keys(d.classes || {}).forEach(function (name) {
          var row = d.classes[name], tr = document.createElement("tr");
          var share = d.images ? (100 * row.positive / d.images).toFixed(1) + "%" : "–";
          [name, row.positive, row.negative, share].forEach(function (v) {
            var td = document.createElement("td"); td.textContent = v; tr.appendChild(td);
          });
          body.appendChild(tr);
        });
        table.hidden = false;
      });
    });
  }

  function pollRows(table) {
    if (!table) return;
    function tick() {
      var rows = table.querySelectorAll("tr[data-job]");
      var live = Array.prototype.filter.call(rows, function (r) {
        return r.dataset.state === "queued" || r.dataset.state === "running";
      });
      if (!live.length) return;
      Promise.all(live.map(function (row) {
        return getJSON("/api/v1/jobs/" + row.dataset.job).then(function (j) {
          row.dataset.state = j.state;
          row.querySelector("progress").value = j.progress || 0;
          var st = row.querySelector(".job-state"); st.textContent = j.state; st.className = "state-" + j.state + " job-state";
          row.querySelector(".job-message").textContent = j.error || j.message || "";
          if (j.state === "done" && table.id === "training-jobs") window.location.reload();
        });
      })).finally(function () { setTimeout(tick, 1500); });
    }
    setTimeout(tick, 800);
  }

  function historyChart(canvas, history) {
    if (!canvas || !window.Chart) return null;
    var chart = new Chart(canvas, {
      type: "line",
      data: { labels: [], datasets: [
        { label: "loss", data: [], yAxisID: "loss", borderColor: "#c0392b" },
        { label: "val mAP@0.5", data: [], yAxisID: "map", borderColor: "#2471a3" },
        { label: "val mAP@.5:.95", data: [], yAxisID: "map", borderColor: "#27ae60" } ] },
      options: { animation: false, scales: { loss: { type: "logarithmic", position: "left" },
        map: { min: 0, max: 1, position: "right" } } }
    });
    update(chart, history);
    return chart;
  }

  function update(chart, history) {
    if (!chart) return;
    chart.data.labels = history.map(function (h) { return h.epoch; });
    chart.data.datasets[0].data = history.map(function (h) { return h.loss; });
    chart.data.datasets[1].data = history.map(function (h) { return h.mAP50; });
    chart.data.datasets[2].data = history.map(function (h) { return h.mAP50_95; });
    chart.update();
  }

  function duration(s) {
    s = Math.round(s);
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
    return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  }

  function jobPage(card, canvas, history) {
    var chart = historyChart(canvas, history);
    if (!card || (card.dataset.state !== "queued" && card.dataset.state !== "running")) return;
    var id = card.dataset.job;
    function tick() {
      getJSON("/api/v1/jobs/" + id).then(function (j) {
        document.getElementById("job-progress").value = j.progress || 0;
        var pct = document.getElementById("job-percent");
        if (pct) pct.textContent = Math.round(100 * (j.progress || 0)) + "%";
        var eta = document.getElementById("job-eta");
        if (eta) eta.textContent = j.eta_s == null ? "" : "· about " + duration(j.eta_s) + " left";
        document.getElementById("job-state").textContent = j.state;
        document.getElementById("job-message").textContent = j.message || "";
        if (j.state !== "queued" && j.state !== "running") { window.location.reload(); return; }
        var next = getJSON("/api/v1/jobs/" + id + "/logs?tail=40").then(function (l) {
          document.getElementById("job-log").textContent = l.log;
        });
        if (chart) next = next.then(function () {
          return getJSON("/api/v1/jobs/" + id + "/history").then(function (h) { update(chart, h.history); });
        });
        next.finally(function () { setTimeout(tick, 1500); });
      }).catch(function () { setTimeout(tick, 3000); });
    }
    setTimeout(tick, 800);
  }

  function monitorChart(canvas, points) {
    if (!canvas || !window.Chart || !points.length) return null;
    var t0 = points[0].ts;
    return new Chart(canvas, {
      type: "line",
      data: { labels: points.map(function (p) { return ((p.ts - t0) / 60).toFixed(1); }),
              datasets: [{ label: "progress (%) over minutes, from monitor.txt", borderColor: "#7d3c98",
                           data: points.map(function (p) { return 100 * p.percent; }) }] },
      options: { animation: false, scales: { y: { min: 0, max: 100 } } }
    });
  }

  return { balance: balance, pollRows: pollRows, historyChart: historyChart, jobPage: jobPage,
           monitorChart: monitorChart };
})();
