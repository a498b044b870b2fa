// The taxiway monitoring dashboard: draws /dashboard/data.json (the monitor's last report and
// the server's live facts) as tables and SVG charts. No library, no request outside this server;
// every value goes into the page as text (textContent), never as markup.
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const DATA_URL = "/dashboard/data.json";

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined) node.setAttribute(key, String(value));
    }
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function svgEl(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined) node.setAttribute(key, String(value));
    }
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function isNumber(value) {
    return typeof value === "number" && Number.isFinite(value);
  }

  function fmt(value, digits) {
    if (!isNumber(value)) return value === null || value === undefined ? "–" : String(value);
    const d = digits === undefined ? 3 : digits;
    if (value !== 0 && Math.abs(value) < Math.pow(10, -d)) return value.toExponential(1);
    return Number(value.toFixed(d)).toString();
  }

  function pct(value) {
    return isNumber(value) ? fmt(100 * value, 2) + "%" : "–";
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }

  function body(tableId) {
    return clear(document.querySelector("#" + tableId + " tbody"));
  }

  function emptyRow(tbody, columns, text) {
    const tr = el("tr", { class: "empty-row" });
    tr.appendChild(el("td", { colspan: columns, class: "empty" }, text));
    tbody.appendChild(tr);
  }

  function facts(dl, pairs) {
    clear(dl);
    for (const [name, value] of pairs) {
      const div = el("div");
      div.appendChild(el("dt", {}, name));
      div.appendChild(el("dd", {}, value));
      dl.appendChild(div);
    }
  }

  // ------------------------------------------------------------------ header and traffic

  function drawHeader(live, monitor, report) {
    document.getElementById("model-name").textContent = live.model ? "· " + live.model : "";
    const summary = document.getElementById("summary");
    summary.className = "summary";
    if (report) {
      const firing = (report.alerts || []).filter((a) => a.severity === "page" || a.severity === "ticket").length;
      summary.textContent = report.healthy
        ? "Healthy: no alert firing."
        : firing + " alert" + (firing === 1 ? "" : "s") + " firing.";
      summary.classList.add(report.healthy ? "healthy" : "unhealthy");
    } else {
      summary.textContent = "No monitor report yet.";
    }
    const state = document.getElementById("monitor-state");
    state.className = "monitor-state " + (monitor.status || "pending");
    state.setAttribute("data-status", monitor.status || "pending");
    const parts = [];
    if (monitor.status === "ok") parts.push("Monitor ran at " + (monitor.ran_at || "?"));
    if (monitor.status === "error") parts.push("The last monitor run failed: " + monitor.message);
    if (monitor.status === "error" && report) parts.push("showing the report of " + (monitor.last_ok_at || "an earlier run"));
    if (monitor.status !== "ok" && monitor.status !== "error" && monitor.message) parts.push(monitor.message);
    if (isNumber(monitor.took_s)) parts.push("took " + fmt(monitor.took_s, 3) + " s");
    if (report && report.threshold) parts.push("thresholds " + report.threshold);
    state.textContent = parts.join("; ");
    const notes = clear(document.getElementById("notes"));
    for (const note of (report && report.notes) || []) notes.appendChild(el("li", {}, note));
  }

  function drawTraffic(live, report) {
    const period = (report && report.period) || {};
    facts(document.getElementById("live-facts"), [
      ["model", live.model || "–"],
      ["version", live.version === undefined ? "–" : "v" + live.version],
      ["stage", live.arm || "–"],
      ["monitored version", report && report.version !== undefined ? "v" + report.version : "–"],
      ["period", period.start ? period.start + " → " + (period.end || "") : "–"],
      ["requests in period", fmt(period.requests, 0)],
      ["windows", fmt(period.windows, 0)],
    ]);
    const tbody = body("arms-table");
    const rows = [];
    if (live.answers) {
      for (const [arm, paths] of Object.entries(live.answers)) {
        for (const [path, count] of Object.entries(paths)) rows.push([arm, path, count]);
      }
    } else if (report && report.versions) {
      for (const [version, count] of Object.entries(report.versions)) rows.push(["v" + version, "all (from the log)", count]);
    }
    const total = rows.reduce((sum, row) => sum + row[2], 0);
    for (const [arm, path, count] of rows) {
      const tr = el("tr", { "data-arm": arm, "data-path": path });
      tr.appendChild(el("td", {}, arm));
      tr.appendChild(el("td", {}, path));
      tr.appendChild(el("td", { class: "number" }, fmt(count, 0)));
      tr.appendChild(el("td", { class: "number" }, total ? pct(count / total) : "–"));
      tbody.appendChild(tr);
    }
    if (!rows.length) emptyRow(tbody, 4, "No answers yet.");
  }

  // ------------------------------------------------------------------ charts

  function frame(svg, width, height) {
    clear(svg);
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    svg.removeAttribute("data-empty");
    return svg;
  }

  // a chart with nothing to draw takes one line, not the chart's height
  function empty(svg) {
    svg.setAttribute("viewBox", "0 0 600 24");
    svg.setAttribute("data-empty", "true");
    return svg;
  }

  function linePath(points) {
    return points.map((p, i) => (i ? "L" : "M") + p[0].toFixed(1) + " " + p[1].toFixed(1)).join(" ");
  }

  function drawLatency(report) {
    const latency = (report && report.latency) || {};
    const budget = latency.budget_ms;
    facts(document.getElementById("latency-facts"), [
      ["p50", isNumber(latency.p50) ? fmt(latency.p50, 2) + " ms" : "–"],
      ["p99", isNumber(latency.p99) ? fmt(latency.p99, 2) + " ms" : "–"],
      ["previous window's p99", isNumber(latency.previous_p99) ? fmt(latency.previous_p99, 2) + " ms" : "–"],
      ["budget", isNumber(budget) ? fmt(budget, 1) + " ms" : "–"],
    ]);
    const svg = frame(document.getElementById("chart-latency"), 600, 200);
    const windows = (latency.windows || []).filter((w) => w && (isNumber(w.p50) || isNumber(w.p99)));
    if (!windows.length) {
      empty(svg).appendChild(svgEl("text", { x: 10, y: 16, class: "empty" }, "no latency windows yet"));
      return;
    }
    const top = Math.max(...windows.map((w) => Math.max(w.p99 || 0, w.p50 || 0)), isNumber(budget) ? budget : 0) * 1.1 || 1;
    const x = (i) => 40 + (windows.length === 1 ? 260 : (i * 540) / (windows.length - 1));
    const y = (v) => 180 - (v / top) * 170;
    svg.appendChild(svgEl("line", { class: "axis", x1: 40, y1: 180, x2: 590, y2: 180 }));
    svg.appendChild(svgEl("text", { x: 2, y: 14 }, fmt(top, 1) + " ms"));
    if (isNumber(budget)) {
      svg.appendChild(svgEl("line", { class: "budget", x1: 40, y1: y(budget), x2: 590, y2: y(budget) }));
      svg.appendChild(svgEl("text", { x: 42, y: y(budget) - 3 }, "budget " + fmt(budget, 1) + " ms"));
    }
    ["p50", "p99"].forEach((key, k) => {
      const points = windows.map((w, i) => [x(i), y(isNumber(w[key]) ? w[key] : 0)]);
      if (points.length === 1) points.push([points[0][0] + 1, points[0][1]]);
      svg.appendChild(svgEl("path", { class: key, d: linePath(points), "data-series": key }));
      svg.appendChild(svgEl("line", { class: key, x1: 500 + k * 45, y1: 10, x2: 515 + k * 45, y2: 10 }));
      svg.appendChild(svgEl("text", { x: 518 + k * 45, y: 13 }, key));
    });
    svg.appendChild(svgEl("text", { x: 40, y: 194 }, windows[0].start || ""));
    if (windows.length > 1) svg.appendChild(svgEl("text", { x: 590, y: 194, "text-anchor": "end" }, windows[windows.length - 1].start || ""));
  }

  const BURN_LINES = [
    [14.4, "14.4× (page, 1 h & 5 m)"],
    [6, "6× (page, 6 h & 30 m)"],
    [1, "1× (ticket, 3 d & 6 h)"],
  ];

  function drawBurn(report) {
    const slos = (report && report.slo) || [];
    const bars = [];
    for (const slo of slos) {
      for (const [window, rate] of Object.entries(slo.burn || {})) bars.push([slo.name, window, rate, slo]);
    }
    const svg = frame(document.getElementById("chart-burn"), 600, 200);
    const tbody = body("slo-table");
    if (!bars.length) {
      empty(svg).appendChild(svgEl("text", { x: 10, y: 16, class: "empty" }, "no SLO burn rates yet"));
      emptyRow(tbody, 5, "No SLO declared or no requests yet.");
      return;
    }
    const top = Math.max(16, ...bars.map((b) => (isNumber(b[2]) ? b[2] : 0))) * 1.05;
    const y = (v) => 180 - (Math.min(v, top) / top) * 170;
    const width = 540 / bars.length;
    svg.appendChild(svgEl("line", { class: "axis", x1: 40, y1: 180, x2: 590, y2: 180 }));
    bars.forEach(([name, window, rate], i) => {
      const value = isNumber(rate) ? rate : 0;
      const over = value > 1;
      svg.appendChild(svgEl("rect", {
        class: "burn" + (over ? " over" : ""),
        x: 40 + i * width + 2, y: y(value), width: Math.max(1, width - 4), height: 180 - y(value),
        "data-slo": name, "data-window": window, "data-value": value,
      }));
      svg.appendChild(svgEl("text", { x: 40 + (i + 0.5) * width, y: 194, "text-anchor": "middle" }, window));
      if (i === 0 || bars[i - 1][0] !== name) svg.appendChild(svgEl("text", { x: 40 + i * width + 2, y: 8 }, name));
    });
    for (const [level, label] of BURN_LINES) {
      svg.appendChild(svgEl("line", { class: "threshold", x1: 40, y1: y(level), x2: 590, y2: y(level) }));
      svg.appendChild(svgEl("text", { x: 42, y: y(level) - 2 }, label));
    }
    drawBurnHistory(slos);
    for (const [name, window, rate, slo] of bars) {
      const tr = el("tr", { "data-slo": name, "data-window": window, class: "status-" + (slo.status || "ok") });
      tr.appendChild(el("td", {}, name));
      tr.appendChild(el("td", {}, isNumber(slo.objective) ? pct(slo.objective) : "–"));
      tr.appendChild(el("td", {}, window));
      tr.appendChild(el("td", { class: "number" }, fmt(rate, 2)));
      tr.appendChild(el("td", { class: "status" }, slo.status || "–"));
      tbody.appendChild(tr);
    }
  }

  function drawBurnHistory(slos) {
    const svg = frame(document.getElementById("chart-burn-history"), 600, 160);
    const series = slos.map((slo) => [slo.name, (slo.history || []).filter((p) => p && isNumber(p.burn))]).filter((s) => s[1].length);
    if (!series.length) {
      empty(svg).appendChild(svgEl("text", { x: 10, y: 16, class: "empty" }, "no burn rate per window yet"));
      return;
    }
    const n = Math.max(...series.map((s) => s[1].length));
    const top = Math.max(2, ...series.flatMap((s) => s[1].map((p) => p.burn))) * 1.1;
    const x = (i) => 40 + (n === 1 ? 270 : (i * 540) / (n - 1));
    const y = (v) => 140 - (Math.min(v, top) / top) * 130;
    svg.appendChild(svgEl("line", { class: "axis", x1: 40, y1: 140, x2: 590, y2: 140 }));
    svg.appendChild(svgEl("line", { class: "threshold", x1: 40, y1: y(1), x2: 590, y2: y(1) }));
    svg.appendChild(svgEl("text", { x: 42, y: y(1) - 2 }, "1× (the budget lasts the period)"));
    svg.appendChild(svgEl("text", { x: 2, y: 14 }, fmt(top, 1) + "×"));
    series.forEach(([name, points], k) => {
      const path = points.map((p, i) => [x(i), y(p.burn)]);
      if (path.length === 1) path.push([path[0][0] + 1, path[0][1]]);
      svg.appendChild(svgEl("path", { class: k % 2 ? "p50" : "p99", d: linePath(path), "data-slo": name }));
      svg.appendChild(svgEl("text", { x: 500, y: 14 + 12 * k }, name));
    });
    svg.appendChild(svgEl("text", { x: 40, y: 154 }, series[0][1][0].start || ""));
  }

  // Chart bins in any of the shapes a report may use: a list of shares or counts, a list of
  // {label, share|count}, or {labels|edges, shares|counts}. Returns [[label, share]].
  function bins(value) {
    if (!value) return [];
    let labels = [];
    let amounts = [];
    if (Array.isArray(value)) {
      value.forEach((item, i) => {
        if (isNumber(item)) {
          labels.push(String(i + 1));
          amounts.push(item);
        } else if (item && typeof item === "object") {
          labels.push(String(item.label ?? item.name ?? item.bin ?? i + 1));
          amounts.push(item.share ?? item.count ?? item.value ?? 0);
        }
      });
    } else if (typeof value === "object") {
      amounts = value.shares || value.counts || value.values || value.share || value.count || [];
      labels = value.labels || value.categories || [];
      const edges = value.edges || [];
      if (!labels.length && edges.length) {
        if (edges.length === amounts.length + 1) {
          labels = amounts.map((_, i) => fmt(edges[i], 3) + "–" + fmt(edges[i + 1], 3));
        } else if (edges.length === amounts.length - 1) {
          labels = amounts.map((_, i) => (i === 0 ? "< " + fmt(edges[0], 3) : i === edges.length ? "≥ " + fmt(edges[i - 1], 3) : fmt(edges[i - 1], 3) + "–" + fmt(edges[i], 3)));
        }
      }
      if (!labels.length) labels = amounts.map((_, i) => String(i + 1));
    }
    const numbers = amounts.map((a) => (isNumber(a) ? a : 0));
    const total = numbers.reduce((s, a) => s + a, 0);
    const shares = total > 1.0001 ? numbers.map((a) => a / total) : numbers;
    return labels.map((label, i) => [label, shares[i] || 0]);
  }

  function drawDistribution(feature) {
    const reference = bins(feature.reference);
    const current = bins(feature.current);
    const svg = svgEl("svg", { class: "dist", viewBox: "0 0 180 48", preserveAspectRatio: "none", "data-feature": feature.output ? "__output__" : feature.name });
    const n = Math.max(reference.length, current.length);
    if (!n) {
      svg.appendChild(svgEl("text", { x: 2, y: 14 }, "no bins"));
      return svg;
    }
    const top = Math.max(...reference.map((b) => b[1]), ...current.map((b) => b[1])) || 1;
    const slot = 180 / n;
    for (let i = 0; i < n; i++) {
      for (const [series, list, offset] of [["reference", reference, 0], ["current", current, slot / 2]]) {
        if (!list[i]) continue;
        const h = (list[i][1] / top) * 44;
        const rect = svgEl("rect", {
          class: series, x: i * slot + offset + 0.5, y: 46 - h, width: Math.max(0.5, slot / 2 - 1), height: h,
          "data-bin": list[i][0], "data-share": list[i][1].toFixed(4),
        });
        rect.appendChild(svgEl("title", {}, series + " " + list[i][0] + ": " + pct(list[i][1])));
        svg.appendChild(rect);
      }
    }
    return svg;
  }

  function drawHistory(feature) {
    const history = (feature.history || []).filter((h) => h && isNumber(h.value));
    const svg = svgEl("svg", { class: "spark", viewBox: "0 0 140 36", preserveAspectRatio: "none" });
    if (!history.length) return svg;
    const top = Math.max(...history.map((h) => Math.max(h.value, isNumber(h.threshold) ? h.threshold : 0))) * 1.1 || 1;
    const x = (i) => (history.length === 1 ? 70 : 2 + (i * 136) / (history.length - 1));
    const y = (v) => 34 - (v / top) * 32;
    const values = history.map((h, i) => [x(i), y(h.value)]);
    if (values.length === 1) values.push([values[0][0] + 1, values[0][1]]);
    svg.appendChild(svgEl("path", { class: "value", d: linePath(values) }));
    const limits = history.filter((h) => isNumber(h.threshold)).map((h) => [x(history.indexOf(h)), y(h.threshold)]);
    if (limits.length === 1) limits.push([limits[0][0] + 1, limits[0][1]]);
    if (limits.length) svg.appendChild(svgEl("path", { class: "threshold", d: linePath(limits) }));
    history.forEach((h, i) => {
      if (h.status && h.status !== "ok") {
        svg.appendChild(svgEl("circle", { cx: x(i), cy: y(h.value), r: 2, class: "status-" + h.status, fill: h.status === "drift" ? "#c62828" : "#b26a00" }));
      }
    });
    return svg;
  }

  function drawFeatures(report) {
    const tbody = body("features-table");
    const features = ((report && report.features) || []).slice();
    if (report && report.output) features.push(Object.assign({}, report.output, { output: true }));
    const order = { drift: 0, warn: 1, ok: 2 };
    features.sort((a, b) => (order[a.status] ?? 3) - (order[b.status] ?? 3) || String(a.name).localeCompare(String(b.name)));
    for (const feature of features) {
      const status = feature.status || "unknown";
      const key = feature.output ? "__output__" : feature.name;
      const tr = el("tr", { class: "feature status-" + status, "data-feature": key, "data-status": status });
      const name = el("td", {}, feature.output ? "model output" : feature.name);
      if (feature.source) name.appendChild(el("div", { class: "hint" }, "from " + feature.source));
      tr.appendChild(name);
      const verdict = el("td", { class: "status" }, status);
      if (feature.why) verdict.appendChild(el("div", { class: "hint" }, feature.why));
      tr.appendChild(verdict);
      tr.appendChild(el("td", {}, feature.statistic || "–"));
      tr.appendChild(el("td", { class: "number" }, fmt(feature.value, 4)));
      tr.appendChild(el("td", { class: "number" }, fmt(feature.threshold, 4)));
      tr.appendChild(el("td", { class: "number" }, fmt(feature.p_value, 4)));
      tr.appendChild(el("td", { class: "number" }, pct(feature.missing_share)));
      tr.appendChild(el("td", { class: "number" }, pct(feature.out_of_range_share)));
      const dist = el("td");
      dist.appendChild(drawDistribution(feature));
      tr.appendChild(dist);
      const over = el("td");
      over.appendChild(drawHistory(feature));
      tr.appendChild(over);
      tbody.appendChild(tr);
    }
    if (!features.length) emptyRow(tbody, 10, "No drift figures yet.");
  }

  // ------------------------------------------------------------------ quality, rates, alerts

  const COUNTS = ["n", "rows", "joined", "windows", "trusted"];

  function drawQuality(report) {
    const quality = (report && report.quality) || {};
    const estimated = quality.estimated || {};
    const realised = quality.realised || {};
    const tbody = body("quality-table");
    const metrics = [];
    for (const source of [estimated, realised]) {
      for (const [key, value] of Object.entries(source)) {
        if (isNumber(value) && !COUNTS.includes(key) && !metrics.includes(key)) metrics.push(key);
      }
    }
    for (const metric of metrics) {
      const tr = el("tr", { "data-metric": metric });
      tr.appendChild(el("td", {}, metric));
      tr.appendChild(el("td", { class: "number" }, fmt(estimated[metric], 4)));
      tr.appendChild(el("td", { class: "number" }, fmt(realised[metric], 4)));
      tbody.appendChild(tr);
    }
    if (!metrics.length) emptyRow(tbody, 3, "No quality figures yet.");
    const counted = el("tr", { class: "counts" });
    counted.appendChild(el("td", {}, "answers scored / outcomes joined"));
    counted.appendChild(el("td", { class: "number" }, fmt(estimated.rows ?? estimated.n, 0)));
    counted.appendChild(el("td", { class: "number" }, fmt(realised.rows ?? realised.n, 0)));
    tbody.appendChild(counted);
    facts(document.getElementById("quality-facts"), [
      ["metric", quality.metric || "–"],
      ["at training", fmt(quality.reference, 4)],
      ["pages below", fmt(quality.minimum, 4)],
    ]);
    drawQualityHistory(quality);
    const notes = [];
    if (!quality.estimated) notes.push("No estimate" + (quality.estimated_why ? ": " + quality.estimated_why + "." : " (none for this model or version)."));
    else if (estimated.why) notes.push("Estimate: " + estimated.why);
    if (!quality.realised) notes.push("No realised quality: no outcomes joined to predictions yet.");
    for (const note of quality.notes || []) notes.push(note);
    document.getElementById("quality-notes").textContent = notes.join(" ");
    const drivers = clear(document.getElementById("drivers"));
    for (const driver of quality.drivers || []) {
      const [name, score] = Array.isArray(driver) ? driver : [driver.feature || driver.name, driver.correlation ?? driver.score];
      drivers.appendChild(el("li", { "data-feature": name }, name + " (correlation " + fmt(score, 2) + " with the quality change)"));
    }
  }

  function drawQualityHistory(quality) {
    const svg = frame(document.getElementById("chart-quality"), 600, 200);
    const history = (quality.history || []).filter((p) => p && (isNumber(p.estimated) || isNumber(p.realised)));
    if (!history.length) {
      empty(svg).appendChild(svgEl("text", { x: 10, y: 16, class: "empty" }, "no quality per window yet"));
      return;
    }
    const values = history.flatMap((p) => [p.estimated, p.realised]).concat([quality.minimum, quality.reference]).filter(isNumber);
    let low = Math.min(...values);
    let high = Math.max(...values);
    if (high - low < 1e-9) { low -= 0.05; high += 0.05; }
    const pad = (high - low) * 0.1;
    low -= pad; high += pad;
    const x = (i) => 40 + (history.length === 1 ? 270 : (i * 540) / (history.length - 1));
    const y = (v) => 180 - ((v - low) / (high - low)) * 170;
    svg.appendChild(svgEl("line", { class: "axis", x1: 40, y1: 180, x2: 590, y2: 180 }));
    svg.appendChild(svgEl("text", { x: 2, y: 14 }, fmt(high, 3)));
    svg.appendChild(svgEl("text", { x: 2, y: 180 }, fmt(low, 3)));
    if (isNumber(quality.minimum)) {
      svg.appendChild(svgEl("line", { class: "threshold", x1: 40, y1: y(quality.minimum), x2: 590, y2: y(quality.minimum) }));
      svg.appendChild(svgEl("text", { x: 42, y: y(quality.minimum) - 3 }, "pages below " + fmt(quality.minimum, 3)));
    }
    ["estimated", "realised"].forEach((key, k) => {
      const points = [];
      history.forEach((p, i) => { if (isNumber(p[key])) points.push([x(i), y(p[key])]); });
      if (!points.length) return;
      if (points.length === 1) points.push([points[0][0] + 1, points[0][1]]);
      svg.appendChild(svgEl("path", { class: key === "estimated" ? "p50" : "p99", d: linePath(points), "data-series": key }));
      svg.appendChild(svgEl("line", { class: key === "estimated" ? "p50" : "p99", x1: 460 + k * 70, y1: 10, x2: 475 + k * 70, y2: 10 }));
      svg.appendChild(svgEl("text", { x: 478 + k * 70, y: 13 }, key));
    });
  }

  function drawRates(report) {
    const rates = (report && report.rates) || {};
    const tbody = body("rates-table");
    const names = { fallback: "fallback answers", degraded: "degraded answers", error: "errors", shed: "shed (429)" };
    for (const [key, label] of Object.entries(names)) {
      const tr = el("tr", { "data-rate": key });
      tr.appendChild(el("td", {}, label));
      tr.appendChild(el("td", { class: "number" }, key in rates && rates[key] === null ? "not in the log (see /metrics)" : pct(rates[key])));
      tbody.appendChild(tr);
    }
  }

  function drawAlerts(report) {
    const tbody = body("alerts-table");
    const rank = { page: 0, ticket: 1, info: 2 };
    const alerts = ((report && report.alerts) || []).slice().sort((a, b) => (rank[a.severity] ?? 3) - (rank[b.severity] ?? 3));
    for (const alert of alerts) {
      const tr = el("tr", { class: "alert severity-" + alert.severity, "data-kind": alert.kind, "data-key": alert.key });
      tr.appendChild(el("td", {}, alert.severity));
      tr.appendChild(el("td", {}, alert.kind));
      const what = el("td", {}, alert.title);
      if (alert.detail) what.appendChild(el("div", { class: "hint" }, alert.detail));
      tr.appendChild(what);
      tr.appendChild(el("td", { class: "number" }, fmt(alert.value, 4)));
      tr.appendChild(el("td", { class: "number" }, fmt(alert.threshold, 4)));
      tr.appendChild(el("td", {}, alert.since || "–"));
      tr.appendChild(el("td", {}, alert.where || "–"));
      tbody.appendChild(tr);
    }
    if (!alerts.length) emptyRow(tbody, 7, "No alert firing.");
  }

  // ------------------------------------------------------------------ the whole page

  function draw(data) {
    const live = data.live || {};
    const monitor = data.monitor || {};
    const report = monitor.report || null;
    drawHeader(live, monitor, report);
    drawTraffic(live, report);
    drawLatency(report);
    drawBurn(report);
    drawRates(report);
    drawFeatures(report);
    drawQuality(report);
    drawAlerts(report);
    const refreshed = document.getElementById("refreshed");
    refreshed.textContent = "Page data as of " + new Date().toISOString() + " (" + (live.source || "service") + ").";
    document.body.setAttribute("data-drawn", monitor.status || "pending");
  }

  function refreshEvery(seconds) {
    window.setInterval(function () {
      fetch(DATA_URL, { cache: "no-store", credentials: "same-origin" })
        .then((answer) => (answer.ok ? answer.json() : Promise.reject(new Error("HTTP " + answer.status))))
        .then(draw)
        .catch((error) => {
          document.getElementById("refreshed").textContent = "Refresh failed (" + error.message + "); showing the last data.";
        });
    }, seconds * 1000);
  }

  function start() {
    const block = document.getElementById("dashboard-data");
    let data = {};
    try {
      data = JSON.parse(block.textContent || "{}");
    } catch (error) {
      document.getElementById("summary").textContent = "The page's data could not be read: " + error.message;
      return;
    }
    draw(data);
    const interval = (data.monitor || {}).interval_s;
    if (isNumber(interval) && interval > 0) refreshEvery(Math.min(60, Math.max(5, interval / 2)));
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
