// Draws the evals page's charts from the JSON the page embeds (id "eval-charts").
(function () {
  "use strict";
  var source = document.getElementById("eval-charts");
  if (!source || typeof Chart === "undefined") return;
  var data = JSON.parse(source.textContent);
  var palette = ["#2563eb", "#d97706", "#059669", "#dc2626", "#7c3aed", "#0891b2"];
  var tierColour = { nano: "#059669", mini: "#2563eb", large: "#dc2626", local: "#6b7280" };

  function draw(id, config) {
    var canvas = document.getElementById(id);
    if (!canvas) return;
    config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false }, config.options || {});
    canvas.parentElement.style.position = "relative";
    canvas.chart = new Chart(canvas, config);
    canvas.dataset.rendered = "true";
  }

  var f1 = data.f1_by_intent;
  if (f1 && f1.labels.length) {
    draw("chart-f1", {
      type: "bar",
      data: {
        labels: f1.labels,
        datasets: f1.runs.map(function (run, i) {
          return { label: run.name, data: run.values, backgroundColor: palette[i % palette.length] };
        }),
      },
      options: { scales: { y: { min: 0, max: 1, title: { display: true, text: "F1" } } } },
    });
  }

  if (data.cost_quality && data.cost_quality.length) {
    draw("chart-cost", {
      type: "scatter",
      data: {
        datasets: data.cost_quality.map(function (run) {
          return {
            label: run.name, pointRadius: 6,
            backgroundColor: tierColour[run.tier] || "#111827",
            data: [{ x: run.cost_per_1k, y: run.macro_f1 }],
          };
        }),
      },
      options: {
        scales: {
          x: { title: { display: true, text: "USD per 1,000 tickets" }, min: 0 },
          y: { title: { display: true, text: "macro-F1" }, min: 0, max: 1 },
        },
      },
    });
  }

  if (data.draft_cost_quality && data.draft_cost_quality.length) {
    draw("chart-draft-cost", {
      type: "scatter",
      data: {
        datasets: data.draft_cost_quality.map(function (run) {
          return {
            label: run.name, pointRadius: 6,
            backgroundColor: tierColour[run.tier] || "#111827",
            data: [{ x: run.cost_per_1k, y: run.reference_f1 }],
          };
        }),
      },
      options: {
        scales: {
          x: { title: { display: true, text: "USD per 1,000 drafts" }, min: 0 },
          y: { title: { display: true, text: "token F1 to the reference" }, min: 0, max: 1 },
        },
      },
    });
  }

  if (data.replay && data.replay.length) {
    var lanes = [];
    data.replay.forEach(function (run) {
      Object.keys(run.lanes).forEach(function (lane) { if (lanes.indexOf(lane) < 0) lanes.push(lane); });
    });
    draw("chart-replay", {
      type: "bar",
      data: {
        labels: lanes,
        datasets: data.replay.map(function (run, i) {
          return {
            label: run.name, backgroundColor: palette[i % palette.length],
            data: lanes.map(function (lane) { return run.lanes[lane]; }),
          };
        }),
      },
      options: { scales: { y: { min: 0, max: 1, title: { display: true, text: "agreement" } } } },
    });
  }
})();
