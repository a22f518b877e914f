// Draws the dashboard's charts from the JSON the page embeds (id "dashboard-data"), and again each time htmx
// swaps in another period. The tables beside each chart carry the same numbers without JavaScript.
(function () {
  "use strict";
  var palette = ["#2563eb", "#d97706", "#059669", "#dc2626", "#7c3aed", "#0891b2", "#be185d", "#4b5563"];
  var laneColour = { mini: "#2563eb", large: "#dc2626", human: "#d97706", "(not routed)": "#9ca3af" };
  var tierColour = { nano: "#059669", mini: "#2563eb", large: "#dc2626" };
  var outcomeColour = { approved_unchanged: "#059669", edited: "#2563eb", rejected: "#dc2626" };
  var outcomeName = { approved_unchanged: "approved unchanged", edited: "edited", rejected: "rejected" };
  var fieldColour = { intent: "#7c3aed", urgency: "#d97706", sentiment: "#0891b2" };

  function colour(map, key, i) { return map[key] || palette[i % palette.length]; }

  function dollars(value) {
    if (value === null || value === undefined) return "—";
    if (value === 0) return "$0";
    var places = Math.abs(value) >= 1 ? 2 : Math.min(8, Math.max(2, 2 - Math.floor(Math.log10(Math.abs(value)))));
    return "$" + value.toFixed(places);
  }

  function stackedSeries(series, map, names) {
    return series.map(function (s, i) {
      return { label: (names && names[s.name]) || s.name, data: s.data, backgroundColor: colour(map, s.name, i), stack: "all" };
    });
  }

  function stackedScales(horizontal, title) {
    var count = { stacked: true, beginAtZero: true, grace: "5%", ticks: { precision: 0 }, title: { display: !!title, text: title } };
    var category = { stacked: true };
    return horizontal ? { x: count, y: category } : { x: category, y: count };
  }

  var builders = {
    lanes: function (d) {
      return { type: "bar", data: { labels: d.lanes.labels, datasets: stackedSeries(d.lanes.series, laneColour) },
               options: { scales: stackedScales(false, "tickets") } };
    },
    reasons: function (d) {
      return { type: "bar", data: { labels: d.reasons.labels, datasets: stackedSeries(d.reasons.series, laneColour,
                                                                                     { large: "to large", human: "to a person" }) },
               options: { indexAxis: "y", scales: stackedScales(true, "route decisions") } };
    },
    schema: function (d) {
      return { type: "bar",
               data: { labels: d.schema.labels,
                       datasets: [{ label: "schema pass rate", data: d.schema.data,
                                    backgroundColor: d.schema.labels.map(function (t, i) { return colour(tierColour, t, i); }) }] },
               options: { plugins: { legend: { display: false },
                                     tooltip: { callbacks: { label: function (c) { return c.parsed.y + "%"; } } } },
                          scales: { y: { min: 0, max: 100, title: { display: true, text: "% of classify calls" } } } } };
    },
    latency: function (d) {
      return { type: "bar",
               data: { labels: d.latency.labels,
                       datasets: [{ label: "p50", data: d.latency.p50, backgroundColor: "#93c5fd" },
                                  { label: "p95", data: d.latency.p95, backgroundColor: "#1d4ed8" }] },
               options: { scales: { y: { beginAtZero: true, title: { display: true, text: "ms" } } } } };
    },
    cost: function (d) {
      var datasets = stackedSeries(d.cost.series, tierColour);
      datasets.push({ type: "line", label: "all-large baseline", data: d.cost.baseline, borderColor: "#111827",
                      backgroundColor: "#111827", borderDash: [6, 4], pointRadius: 2, stack: "baseline" });
      return { type: "bar", data: { labels: d.cost.labels, datasets: datasets },
               options: { scales: { x: { stacked: true },
                                    y: { stacked: true, beginAtZero: true, ticks: { callback: dollars }, title: { display: true, text: "USD" } } },
                          plugins: { tooltip: { callbacks: { label: function (c) { return c.dataset.label + ": " + dollars(c.parsed.y); } } } } } };
    },
    cost_per_ticket: function (d) {
      var c = d.cost_per_ticket;
      var datasets = stackedSeries(c.series, tierColour);
      datasets.push({ label: "every call at large", data: [null, c.baseline], backgroundColor: "#111827", stack: "all" });
      return { type: "bar", data: { labels: c.labels, datasets: datasets },
               options: { indexAxis: "y",
                          scales: { x: { stacked: true, beginAtZero: true, ticks: { callback: dollars }, title: { display: true, text: "USD per ticket" } },
                                    y: { stacked: true } },
                          plugins: { tooltip: { callbacks: { label: function (ctx) { return ctx.dataset.label + ": " + dollars(ctx.parsed.x); } } } } } };
    },
    outcomes_intent: function (d) {
      return { type: "bar", data: { labels: d.outcomes_intent.labels,
                                    datasets: stackedSeries(d.outcomes_intent.series, outcomeColour, outcomeName) },
               options: { indexAxis: "y", scales: stackedScales(true, "drafts") } };
    },
    outcomes_lane: function (d) {
      return { type: "bar", data: { labels: d.outcomes_lane.labels,
                                    datasets: stackedSeries(d.outcomes_lane.series, outcomeColour, outcomeName) },
               options: { scales: stackedScales(false, "drafts") } };
    },
    corrections: function (d) {
      return { type: "bar", data: { labels: d.corrections.labels, datasets: stackedSeries(d.corrections.series, fieldColour) },
               options: { indexAxis: "y", scales: stackedScales(true, "corrections within 5 minutes") } };
    },
    sla: function (d) {
      var s = d.sla;
      return { type: "bar",
               data: { labels: s.labels,
                       datasets: [{ label: "met", data: s.met, backgroundColor: "#059669", stack: "all" },
                                  { label: "missed", data: s.missed, backgroundColor: "#dc2626", stack: "all" },
                                  { label: "open", data: s.open, backgroundColor: "#d1d5db", stack: "all" }] },
               options: { scales: stackedScales(false, "tickets due") } };
    },
  };

  function draw(canvas, config) {
    config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false }, config.options || {});
    new Chart(canvas, config);
    canvas.dataset.rendered = "true";
  }

  function drawAll() {
    var source = document.getElementById("dashboard-data");
    if (!source || typeof Chart === "undefined") return;
    var data = JSON.parse(source.textContent);
    document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      var build = builders[canvas.dataset.chart];
      if (build && !Chart.getChart(canvas)) draw(canvas, build(data));
    });
  }

  function isBody(target) { return target && target.id === "dashboard-body"; }

  document.addEventListener("htmx:beforeSwap", function (event) {
    if (!isBody(event.detail.target)) return;
    // A refused period comes back as HTTP 400 with its message in the body: show it rather than nothing.
    if (event.detail.xhr.status === 400) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
    if (event.detail.shouldSwap && typeof Chart !== "undefined") {
      event.detail.target.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
        var chart = Chart.getChart(canvas);
        if (chart) chart.destroy();
      });
    }
  });
  document.addEventListener("htmx:afterSettle", drawAll);
  // Back and forward restore the page's HTML from htmx's history cache: the canvases come back blank.
  document.addEventListener("htmx:historyRestore", drawAll);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", drawAll);
  else drawAll();
})();
