// The asyncstream dashboard: one EventSource for batches, /api/status polled for the rest.
// Works offline: uPlot is served from static/ with the page.
"use strict";
(function () {
  const MAX_POINTS = 300, MAX_ROWS = 100, STATUS_EVERY_MS = 2000;
  const palette = ["#1565c0", "#ef6c00", "#2e7d32", "#6a1b9a", "#c62828", "#00838f"];
  let interval = 1, streams = [], rateChart = null, delayChart = null;
  const rateData = [[]], delayData = [[], [], [], []];

  const $ = (sel) => document.querySelector(sel);
  const fmt = (x, digits = 3) => (x === null || x === undefined) ? "–" : Number(x).toFixed(digits);
  const width = () => Math.max(320, Math.min(640, (window.innerWidth - 80) / 2));

  function cell(text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  }

  function fillTable(sel, rows) {
    const body = $(sel + " tbody");
    body.replaceChildren(...rows.map((values) => {
      const tr = document.createElement("tr");
      values.forEach((v, i) => tr.appendChild(cell(String(v), i === 0 ? "name" : "")));
      return tr;
    }));
    if (!rows.length) body.replaceChildren(Object.assign(document.createElement("tr"), {
      innerHTML: "<td class='name'>none</td>" }));
  }

  function makeCharts(names) {
    streams = names;
    rateData.length = 1;
    names.forEach(() => rateData.push([]));
    const rateSeries = [{}].concat(names.map((n, i) => ({
      label: n, stroke: palette[i % palette.length], width: 2 })));
    // Batch times as hh:mm:ss (UTC); as mm:ss.s when ticks are closer than a second.
    const clock = (u, ticks) => ticks.map((t) => {
      const iso = new Date(t * 1000).toISOString();
      return ticks.length > 1 && ticks[1] - ticks[0] < 1 ? iso.substr(14, 7) : iso.substr(11, 8);
    });
    const axes = [{ values: clock }, {}];
    rateChart = new uPlot({ width: width(), height: 220, series: rateSeries, axes,
      scales: { x: { time: false } } }, rateData, $("#chart-rate"));
    delayChart = new uPlot({ width: width(), height: 220, axes, scales: { x: { time: false } },
      series: [{}, { label: "scheduling", stroke: palette[0], width: 2 },
        { label: "processing", stroke: palette[1], width: 2 },
        { label: "total", stroke: palette[2], width: 2 }] }, delayData, $("#chart-delay"));
    window.asyncstreamCharts = { rate: rateChart, delay: delayChart };
  }

  function push(data, values) {
    values.forEach((v, i) => { data[i].push(v); if (data[i].length > MAX_POINTS) data[i].shift(); });
  }

  function addBatch(b) {
    if (!rateChart) return;
    const t = b.batch_time_ms / 1000;
    push(rateData, [t].concat(streams.map((s) => (b.stream_records[s] || 0) / interval)));
    push(delayData, [t, b.scheduling_delay, b.processing_delay, b.total_delay]);
    rateChart.setData(rateData);
    delayChart.setData(delayData);
    const tr = document.createElement("tr");
    tr.dataset.seq = b.seq;
    const ops = Object.entries(b.operator_seconds)
      .map(([name, s]) => name + ": " + (s * 1000).toFixed(2) + " ms").join("; ");
    [new Date(b.batch_time_ms).toISOString().replace("T", " ").substr(0, 23), b.num_records,
      fmt(b.scheduling_delay), fmt(b.processing_delay), fmt(b.total_delay)]
      .forEach((v) => tr.appendChild(cell(String(v))));
    tr.appendChild(cell(ops, "ops"));
    const body = $("#batches tbody");
    body.insertBefore(tr, body.firstChild);
    while (body.children.length > MAX_ROWS) body.removeChild(body.lastChild);
  }

  function showStatus(s) {
    interval = s.batch_interval;
    const badge = $("#state");
    badge.textContent = s.state;
    badge.className = "badge " + s.state;
    const last = s.last_batch;
    $("#summary").textContent = s.batches_completed + " batches done, " + s.batches_queued +
      " queued" + (last ? ", last total delay " + fmt(last.total_delay) + " s" : "");
    fillTable("#sources", Object.entries(s.sources).flatMap(([name, counters]) =>
      Object.entries(counters).map(([k, v]) => [name, k, v])));
    fillTable("#errors", s.source_errors.map((e) => [e.source, e.kind, e.count]));
    fillTable("#rates", Object.entries(s.rates).map(([name, r]) =>
      [name, r === null ? "not limited yet" : fmt(r, 1) + " records/s"]));
    fillTable("#state-keys", Object.entries(s.state_keys).map(([name, n]) => [name, n]));
    fillTable("#operators", Object.entries(s.operator_seconds).map(([name, x]) => [name, fmt(x, 4)]));
  }

  let polling = false, lastPoll = 0;

  async function poll() {
    if (polling) return;
    polling = true;
    lastPoll = Date.now();
    try {
      const response = await fetch("api/status", { cache: "no-store" });
      const status = await response.json();
      if (!rateChart) makeCharts(status.streams);
      showStatus(status);
    } catch (err) {
      $("#state").textContent = "unreachable";
    } finally {
      polling = false;
    }
  }

  // After a batch, the counters too (at most four times a second).
  function pollSoon() {
    if (Date.now() - lastPoll > 250) poll();
  }

  async function main() {
    await poll();
    setInterval(poll, STATUS_EVERY_MS);
    const events = new EventSource("api/batches");
    events.addEventListener("batch", (e) => { addBatch(JSON.parse(e.data)); pollSoon(); });
    events.addEventListener("end", () => { events.close(); poll(); });
  }
  main();
})();
