/* ymir hub fleet pages: the device metrics chart and live rollout rows (plain JS, vendored Chart.js). */
"use strict";
var ymirFleet = (function () {
  function metricsChart(canvas, series) {
    if (!canvas || typeof Chart === "undefined") return;
    var labels = series.map(function (m) { return new Date(m.ts * 1000).toLocaleTimeString(); });
    function line(key, label, axis) {
      return { label: label, data: series.map(function (m) { return m[key]; }), yAxisID: axis, spanGaps: true,
               pointRadius: 0, borderWidth: 1.5 };
    }
    new Chart(canvas, {
      type: "line",
      data: { labels: labels, datasets: [line("p95_ms", "p95 latency (ms)", "ms"), line("p50_ms", "p50 latency (ms)", "ms"),
                                          line("inferences", "inferences / interval", "n"), line("outbox_depth", "outbox depth", "n")] },
      options: { animation: false, scales: { ms: { position: "left" }, n: { position: "right", grid: { drawOnChartArea: false } } } }
    });
  }

  function pollRollout(table) {
    if (!table) return;
    var url = table.getAttribute("data-poll");
    function tick() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.json(); })
        .then(function (d) {
          var state = document.getElementById("dep-state");
          state.textContent = d.state;
          state.className = "state-" + d.state;
          document.getElementById("dep-message").textContent = d.message || "";
          (d.devices || []).forEach(function (r) {
            var tr = table.querySelector('tr[data-device="' + r.device_id + '"]');
            if (!tr) return;
            var cell = tr.querySelector(".row-state");
            cell.textContent = r.state;
            cell.className = "row-state state-" + r.state;
            tr.querySelector(".row-revision").textContent = r.revision || "–";
            tr.querySelector(".row-reason").textContent = r.reason || "";
            tr.querySelector(".row-online").textContent = r.online ? "online" : "offline";
          });
          if (["running", "rolling_back"].indexOf(d.state) >= 0) setTimeout(tick, 1000);
        })
        .catch(function () { setTimeout(tick, 3000); });
    }
    setTimeout(tick, 500);
  }

  return { metricsChart: metricsChart, pollRollout: pollRollout };
})();
