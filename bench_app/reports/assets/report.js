// bench_app run report: draws the charts and the sample browser from the embedded run data.
// Every text from the run (prompts, outputs, logs) is inserted as text, never as HTML.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const PAGE = 50; // samples shown per page of the browser

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  function fmt(value) {
    if (value === null || value === undefined) return "";
    if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toFixed(2);
    return String(value);
  }
  function table(headers, rows, rowClass) {
    const body = rows.map((row, i) => el("tr", { class: rowClass ? rowClass(i) : "" },
      ...row.map((cell) => el("td", {}, cell instanceof Node ? cell : fmt(cell)))));
    return el("table", {}, el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", { text: h })))),
      el("tbody", {}, ...body));
  }
  function section(id, title, ...children) {
    document.getElementById("nav").append(el("a", { href: "#" + id, text: title }));
    const node = el("section", { id: id }, el("h2", { text: title }), ...children);
    document.getElementById("main").append(node);
    return node;
  }
  const PERF = /ttft|tpot|itl|e2el|latency|throughput|per_s/i;
  function primary(metrics) {  // the first score (perf figures are not scores)
    const keys = Object.keys(metrics || {}).filter((k) => !PERF.test(k));
    return keys.length ? [keys[0], metrics[keys[0]]] : [null, null];
  }
  const plotConfig = { displaylogo: false, responsive: true };

  if (data.kind === "sweep") { sweepReport(); return; }
  if (data.kind === "compare") { compareReport(); return; }

  function compareReport() {
    document.getElementById("header").append(el("h1", { text: "bench_app compare" }),
      el("div", { class: "facts" }, el("span", { text: "A: " + data.a }), el("span", { text: "B: " + data.b })));
    const deltas = data.scores.filter((r) => r.delta !== null);
    const chart = el("div", { id: "chart-deltas", class: "chart" });
    section("scores", "Scores (B - A)", chart, table(["dataset", "metric", "A", "B", "B - A"],
      data.scores.map((r) => [r.dataset, r.metric, r.a, r.b, r.delta])));
    Plotly.newPlot(chart, [{ type: "bar", x: deltas.map((r) => r.dataset + " " + r.metric), y: deltas.map((r) => r.delta),
      marker: { color: deltas.map((r) => r.delta < 0 ? "#cf222e" : "#2da44e") } }],
    { margin: { t: 20, b: 120 }, height: 340, yaxis: { title: { text: "B - A" } } }, plotConfig);
    section("paired", "Paired samples (exact McNemar test on the flipped answers)",
      data.paired.length ? table(["dataset", "paired", "right->wrong", "wrong->right", "p-value", "verdict"],
        data.paired.map((p) => [p.dataset, p.paired, p.right_to_wrong, p.wrong_to_right, p.p_value.toPrecision(4), p.verdict]))
        : el("p", { class: "muted", text: "No dataset has per-sample records in both runs." }));
    const text = (v) => v === null || v === undefined ? "" : typeof v === "string" ? v : JSON.stringify(v);
    section("flips", "Flipped samples (" + data.flips.length + ")", ...data.flips.map((f) => {
      const x = f.a || {}, y = f.b || {};
      return el("div", { class: "sample", "data-direction": f.direction },
        el("div", { class: "meta" }, el("span", { class: "badge " + (f.direction === "right->wrong" ? "wrong" : "right"), text: f.direction }),
          " " + fmt(x.d) + " / " + fmt(x.s) + " #" + fmt(x.i) + " — gold: " + text(x.g)),
        el("div", { class: "cols three" }, el("div", {}, el("h4", { text: "prompt" }), el("pre", { text: text(x.p) })),
          el("div", {}, el("h4", { text: "A output -> prediction " + text(x.x) }), el("pre", { text: text(x.o) })),
          el("div", {}, el("h4", { text: "B output -> prediction " + text(y.x) }), el("pre", { text: text(y.o) }))));
    }));
    section("config", "Everything bench-app compare found", el("pre", { text: data.lines.join("\n") || "identical" }));
    document.body.setAttribute("data-report-ready", "1");
  }

  function sweepReport() {
    const sweep = data.sweep, jobs = data.jobs;
    document.getElementById("header").append(el("h1", { text: "bench_app sweep " + sweep.name }),
      el("div", { class: "facts" }, el("span", {}, "status: ", el("b", { text: fmt(sweep.status) })),
        el("span", { text: jobs.length + " job(s)" })));
    const shorts = [...new Set(jobs.flatMap((j) => Object.keys(j.datasets)))];
    const cell = (entry) => {
      if (!entry) return el("span", { class: "muted", text: "-" });
      const [name, value] = primary(entry.metrics);
      return el("span", { class: "badge " + (entry.status === "ok" ? "right" : "wrong"),
        text: entry.status + (name ? " " + name + " " + fmt(value) : "") });
    };
    section("jobs", "Jobs x datasets", table(["job", "overrides", "status", ...shorts],
      jobs.map((j) => [j.report ? el("a", { href: j.report, text: "job " + j.num }) : "job " + j.num,
        j.overrides.join(" "), j.status + (j.error ? ": " + j.error : ""),
        ...shorts.map((s) => cell(j.datasets[s]))])));
    const traces = [];
    for (const group of data.repeats) {
      const names = Object.keys(group.datasets).filter((s) => primary(Object.fromEntries(
        Object.entries(group.datasets[s].metrics).map(([k, v]) => [k, v.mean])))[0] !== null);
      const stats = names.map((s) => Object.values(group.datasets[s].metrics)[0]);
      traces.push({ type: "bar", name: group.config.join(" ") || "(base)", x: names, y: stats.map((m) => m.mean),
        error_y: { type: "data", symmetric: false,
          array: stats.map((m) => m.ci95 ? m.ci95[1] - m.mean : 0), arrayminus: stats.map((m) => m.ci95 ? m.mean - m.ci95[0] : 0) },
        hovertemplate: "%{x}: mean %{y:.2f}<extra>" + (group.config.join(" ") || "(base)") + "</extra>" });
    }
    if (!data.repeats.length) { document.body.setAttribute("data-report-ready", "1"); return; }
    const chart = el("div", { id: "chart-repeats", class: "chart" });
    section("repeats", "Repeats: mean and 95% confidence interval of the first metric", chart,
      table(["configuration", "jobs", "dataset", "metric", "n", "mean", "std", "95% CI"],
        data.repeats.flatMap((g) => Object.entries(g.datasets).flatMap(([s, d]) => Object.entries(d.metrics).map(([k, m]) =>
          [g.config.join(" ") || "(base)", g.jobs.join(", "), s, k, m.n, m.mean, m.std,
            m.ci95 ? fmt(m.ci95[0]) + " .. " + fmt(m.ci95[1]) : "-"])))));
    Plotly.newPlot(chart, traces, { barmode: "group", margin: { t: 20, b: 80 }, height: 380 }, plotConfig);
    document.body.setAttribute("data-report-ready", "1");
  }

  // Header
  const run = data.run;
  document.getElementById("header").append(
    el("h1", { text: "bench_app run " + run.name }),
    el("div", { class: "facts" },
      el("span", {}, "status: ", el("b", { text: run.status })),
      el("span", { text: "wall time: " + fmt(run.wall_time_s) + " s" }),
      el("span", { text: "started: " + fmt(run.started) }),
      el("span", { text: "host: " + fmt(run.host) }),
      el("span", { text: "git: " + fmt((run.git.commit || "").slice(0, 10)) + (run.git.dirty ? " (dirty)" : "") }),
      el("span", { text: Object.entries(run.versions).map(([k, v]) => k + " " + v).join(", ") })));

  // Scores
  const datasets = data.datasets;
  const decidedText = (s) => !s || !s.stages ? "" : " (" + (s.verdict || "not decided") + ", decided at stage " +
    s.stage + " of " + s.stages + ": " + s.questions + " of " + s.total + " questions, " + s.requests_saved +
    " requests saved" + (s.stage === s.stages ? ")" : "; not a full score)");
  const repeatsText = (r) => !r || !r.k ? "" : " (mean of " + r.k + " repeats over " + r.questions + " questions" +
    (r.ci95 ? ", 95% interval " + fmt(r.ci95[0]) + ".." + fmt(r.ci95[1]) : "") + "; each repeat " +
    r.scores.map(fmt).join(", ") + Object.keys(r).filter((k) => k.startsWith("pass@") || k.startsWith("maj@")).map((k) => "; " + k + " " +
    fmt(r[k])).join("") + ")";
  const scoreChart = el("div", { id: "chart-scores", class: "chart" });
  section("scores", "Scores",
    scoreChart,
    table(["dataset", "AISBench dataset", "status", "metrics", "prompts done", "samples", "answers reused / generated",
      "evaluation s", "reason"],
      datasets.map((d) => [d.short, d.name, el("span", { class: "status-" + d.status, text: d.status }),
        Object.entries(d.metrics).map(([k, v]) => k + " " + fmt(v)).join(", ") + (d.probe ? " (probe of " +
          d.probe.size + ", seed " + d.probe.seed + (d.probe.ci95 && d.probe.ci95.length ? "; 95% interval " +
          d.probe.ci95[0] + "-" + d.probe.ci95[1] : "") + ": not a full run)" : "") + repeatsText(d.repeats) +
          decidedText(d.decided),
        d.prompts.done === undefined ? "" : d.prompts.done + " / " + (d.prompts.total || "?"),
        d.samples === null || d.samples === undefined ? (d.samples_error || "") : d.samples,
        d.answers.reused === undefined ? "" : d.answers.reused + " / " + d.answers.generated,
        d.evaluation_s, d.reason || ""])));
  const scored = datasets.filter((d) => primary(d.metrics)[0] !== null);
  Plotly.newPlot(scoreChart, [{
    type: "bar", x: scored.map((d) => d.short), y: scored.map((d) => primary(d.metrics)[1]),
    text: scored.map((d) => primary(d.metrics)[0] + " " + fmt(primary(d.metrics)[1])),
    marker: { color: scored.map((d) => d.status === "ok" ? "#2da44e" : "#cf222e") },
  }], { title: { text: "Score per dataset (first metric)" }, margin: { t: 40, b: 80 },
    yaxis: { title: { text: "score" } }, height: 340 }, plotConfig);

  // Per subset
  const withSubsets = datasets.filter((d) => Object.keys(d.subsets).length > 0);
  if (withSubsets.length) {
    const chooser = el("select", { id: "subset-dataset" }, ...withSubsets.map((d) => el("option", { value: d.short, text: d.short })));
    const subsetChart = el("div", { id: "chart-subsets", class: "chart" });
    const subsetTable = el("div");
    const draw = () => {
      const d = withSubsets.find((x) => x.short === chooser.value);
      const names = Object.keys(d.subsets);
      Plotly.react(subsetChart, [{ type: "bar", orientation: "h", y: names, x: names.map((n) => d.subsets[n]) }],
        { title: { text: d.short + ": score per subset" }, margin: { l: 260, t: 40 },
          height: Math.max(260, 26 * names.length + 80) }, plotConfig);
      subsetTable.replaceChildren(table(["subset", "score"], names.map((n) => [n, d.subsets[n]])));
    };
    chooser.addEventListener("change", draw);
    section("subsets", "Scores per subset", el("div", { class: "filters" }, el("label", { text: "dataset" }), chooser),
      subsetChart, subsetTable);
    draw();
  }

  // Reasoning: answers cut in their thinking, the score over the finished ones, thinking tokens
  const reasoned = datasets.filter((d) => d.reasoning && d.reasoning.answers && data.samples.some((s) => s.d === d.short && s.rt));
  if (reasoned.length) {
    const histogram = el("div", { id: "chart-reasoning", class: "chart" });
    const policy = (d) => d.cut_in_thinking_policy === "as_is" ? "scored as given" : "scored as no answer";
    section("reasoning", "Reasoning",
      el("p", { class: "muted", text: "Answers cut by the length limit before their thinking ended are " +
        "counted here; by default (aisbench.cut_in_thinking: no_answer) they score as no answer, never " +
        "from a draft inside the thinking." }),
      table(["dataset", "answers", "finished", "cut in thinking", "score (all)", "score (finished)",
        "reasoning tokens median", "p95", "cut answers"],
        reasoned.map((d) => [d.short, d.reasoning.answers, d.reasoning.finished, d.reasoning.cut_in_thinking,
          fmt(d.reasoning.score_all), fmt(d.reasoning.score_finished), fmt(d.reasoning.reasoning_tokens_median),
          fmt(d.reasoning.reasoning_tokens_p95), policy(d)])),
      histogram);
    Plotly.newPlot(histogram, reasoned.map((d) => ({ type: "histogram", name: d.short, opacity: 0.7,
      x: data.samples.filter((s) => s.d === d.short && s.rt).map((s) => s.rt) })),
    { barmode: "overlay", title: { text: "Reasoning tokens per answer" }, margin: { t: 40 },
      xaxis: { title: { text: "reasoning tokens" } }, yaxis: { title: { text: "answers" } }, height: 320 }, plotConfig);
  }

  // Accuracy under load (execution.load_levels): the frontier of score against throughput, per dataset
  if (data.load && data.load.datasets) {
    const frontier = el("div", { id: "chart-frontier", class: "chart" });
    const levels = Object.entries(data.load.datasets);
    const ci = (r) => r.ci95 ? " (" + fmt(r.ci95[0]) + " .. " + fmt(r.ci95[1]) + ")" : "";
    const pair = (a, b) => (a === undefined || a === null) ? "-" : fmt(a) + " / " + fmt(b);
    section("load", "Accuracy under load",
      el("p", { class: "muted", text: "Each dataset ran once per level (requests in flight) on the same " +
        "server, in the order shown. Score with its 95% interval against output tokens per second; every " +
        "level is compared with the lowest on the same questions (changed predictions, exact McNemar test, " +
        "Holm-adjusted). The knee: the last level before accuracy changes significantly or throughput " +
        "rises by less than 5%." }),
      frontier,
      table(["dataset", "level", "score (95% CI)", "out tok/s", "req/s", "e2e p50 / p95 s", "TTFT p50 / p95 s",
        "max in flight", "changed vs lowest", "right->wrong / wrong->right", "Holm p"],
        levels.flatMap(([base, d]) => d.levels.map((r) => [base, r.level, fmt(r.score) + ci(r),
          r.output_tokens_per_s, r.requests_per_s, pair(r.e2e_s_p50, r.e2e_s_p95), pair(r.ttft_s_p50, r.ttft_s_p95),
          r.max_in_flight, r.changed_predictions === undefined ? "(reference)" : r.changed_predictions,
          r.p_value === undefined ? "-" : r.right_to_wrong + " / " + r.wrong_to_right,
          r.p_holm === undefined ? "-" : r.p_holm.toPrecision(3) + (r.significant ? " *" : "")]))),
      el("ul", {}, ...levels.map(([base, d]) => el("li", {}, el("b", { text: base + ": knee " + d.knee.level }),
        " (" + d.knee.reason + "); order " + d.order.join(" -> ")))));
    Plotly.newPlot(frontier, levels.map(([base, d]) => ({ type: "scatter", mode: "lines+markers+text", name: base,
      x: d.levels.map((r) => r.output_tokens_per_s), y: d.levels.map((r) => r.score),
      text: d.levels.map((r) => "c" + r.level), textposition: "top center",
      error_y: { type: "data", symmetric: false, array: d.levels.map((r) => r.ci95 ? r.ci95[1] - r.score : 0),
        arrayminus: d.levels.map((r) => r.ci95 ? r.score - r.ci95[0] : 0) } })),
    { margin: { t: 20 }, height: 380, xaxis: { title: { text: "output tokens per second" } },
      yaxis: { title: { text: "score" } } }, plotConfig);
  }

  // Parity: the run's scores against the published reference of its model (bench-app parity)
  if (data.parity) {
    const p = data.parity;
    section("parity", "Parity with " + p.reference,
      el("p", { class: "muted", text: (p.source || "") + (p.verified ? "" : " — the reference's figures are " +
        "marked unverified") + ". Verdict: the 95% interval of run - reference within +-" + p.tolerance + " points " +
        "(consistent), beyond it (below / above), or neither (inconclusive: the reasons say what would decide " +
        "it); a caution names a setting that alone can move the score." }),
      table(["dataset", "mode", "run [95% interval] (n)", "reference", "difference", "verdict", "why"],
        p.rows.map((r) => [r.dataset, r.mode, r.score === null ? "-" : fmt(r.score) + (r.ci95 ? " [" + r.ci95[0] +
          ", " + r.ci95[1] + "]" : "") + " (n=" + r.questions + ")", r.reference === null ? "-" : r.reference,
          r.difference === null ? "-" : (r.difference > 0 ? "+" : "") + r.difference,
          r.verdict + (r.cautions.length ? " (caution)" : ""),
          r.reasons.concat(r.cautions.map((c) => "caution: " + c)).join("; ")])));
  }

  // Replicas (execution.replicas > 1): each one's share of every dataset; an uneven replica shows here
  const shared = datasets.filter((d) => d.replicas && d.replicas.length);
  if (shared.length) {
    section("replicas", "Replicas",
      el("p", { class: "muted", text: "Requests are spread over the replicas of an engine configuration, each to " +
        "the one with fewest in flight. Busy: time with at least one request in flight." }),
      table(["dataset", "replica", "requests", "failures", "prompt tokens", "completion tokens", "busy s"],
        shared.flatMap((d) => d.replicas.map((r) => [d.short, r.replica, r.requests, r.failures, r.prompt_tokens,
          r.completion_tokens, fmt(r.busy_s)]))));
  }

  // Failures
  const failed = datasets.filter((d) => d.status !== "ok");
  if (failed.length) {
    section("failures", "Failed datasets (" + failed.length + ")", ...failed.map((d) => el("div", {},
      el("h3", { text: d.short + ": " + d.status }), el("p", { text: d.reason || "no reason recorded" }),
      d.log_tail ? el("pre", { text: d.log_tail }) : null)));
  }

  // Timeline
  const lanes = [];
  // execution.replicas > 1: one lane per replica, with its own start, time up and restarts
  const servers = data.servers.flatMap((s) => s.replicas ? s.replicas.map((r) => ({ ...r, group: s.group + " replica " +
    r.replica, restarts: r.restarts })) : [s]);
  for (const s of servers) {
    if (!s.started_at || s.external) continue;  // an external server was not started by this run
    const start = new Date(s.started_at);
    const ready = new Date(start.getTime() + 1000 * (s.ready_after_s || 0));
    lanes.push({ lane: "group " + s.group + " server", phase: "server start", from: start, to: ready });
    if (s.stopped_at) lanes.push({ lane: "group " + s.group + " server", phase: "server up", from: ready, to: new Date(s.stopped_at) });
    for (const r of s.restarts || []) {  // the server died and was started again
      const at = new Date(r.at);
      lanes.push({ lane: "group " + s.group + " server", phase: "restart: " + r.reason, from: at, to: new Date(at.getTime() + 2000) });
    }
  }
  for (const d of datasets) {
    if (!d.evaluation_started_at) continue;
    const from = new Date(d.evaluation_started_at);
    lanes.push({ lane: d.short, phase: "evaluation (" + d.status + ")", from: from,
      to: new Date(from.getTime() + 1000 * (d.evaluation_s || 0)) });
  }
  const timeline = el("div", { id: "chart-timeline", class: "chart" });
  section("timeline", "Timeline", lanes.length ? timeline : el("p", { class: "muted", text: "No timing recorded." }));
  if (lanes.length) {
    const phases = [...new Set(lanes.map((l) => l.phase))];
    const colours = { "server start": "#bf8700", "server up": "#8c959f" };
    for (const phase of phases) if (phase.startsWith("restart")) colours[phase] = "#8250df";
    Plotly.newPlot(timeline, phases.map((phase) => {
      const items = lanes.filter((l) => l.phase === phase);
      return { type: "bar", orientation: "h", name: phase, y: items.map((l) => l.lane),
        base: items.map((l) => l.from.toISOString()), x: items.map((l) => Math.max(l.to - l.from, 500)),
        marker: { color: colours[phase] || (phase.includes("(ok)") ? "#2da44e" : "#cf222e") },
        hovertemplate: "%{y}: " + phase + "<br>%{base|%H:%M:%S} + %{x:,.0f} ms<extra></extra>" };
    }), { barmode: "overlay", xaxis: { type: "date", title: { text: "time" } },
      yaxis: { autorange: "reversed" }, margin: { l: 170, t: 20 }, height: 80 + 34 * new Set(lanes.map((l) => l.lane)).size },
    plotConfig);
  }

  // Engine configuration
  section("engine", "Engine configuration per dataset",
    el("p", { class: "muted", text: "Highlighted: what the dataset's vllm_config_override changed." }),
    ...datasets.map((d) => el("details", { open: "" }, el("summary", {}, el("b", { text: d.short }),
      " (engine group " + fmt(d.group) + (d.engine.override.length ? "; override: " + d.engine.override.join(", ") : "") + ")"),
    table(["engine argument", "value"], Object.entries(d.engine.args).map(([k, v]) => [k, v]),
      (i) => d.engine.override.includes(Object.keys(d.engine.args)[i]) ? "changed" : ""),
    Object.keys(d.server).length ? table(["server fact (read back)", "value"], Object.entries(d.server)) : null)));

  // Performance (perf mode): per-request distributions from the samples' own timing, and AISBench's summary
  const timed = data.samples.filter((s) => s.e2el_ms !== undefined);
  const perfKeys = (d) => Object.keys(d.metrics).filter((k) => PERF.test(k));
  const perf = datasets.filter((d) => perfKeys(d).length);
  if (timed.length || perf.length) {
    const perfChart = el("div", { id: "chart-perf", class: "chart" });
    section("perf", "Performance (per request)", perfChart,
      perf.length ? table(["dataset", "AISBench summary"], perf.map((d) => [d.short,
        perfKeys(d).map((k) => k + " " + fmt(d.metrics[k])).join(", ")])) : null);
    const measures = [["ttft_ms", "TTFT (ms)"], ["tpot_ms", "TPOT (ms)"], ["e2el_ms", "E2E latency (ms)"],
      ["tps", "output tokens/s"]];
    const value = (s, key) => key === "tps" ? (s.ot && s.e2el_ms ? s.ot / (s.e2el_ms / 1000) : null) : s[key];
    const names = [...new Set(timed.map((s) => s.d))];
    const traces = [];
    measures.forEach(([key, label], i) => {
      for (const name of names) {
        const values = timed.filter((s) => s.d === name).map((s) => value(s, key)).filter((v) => v !== null && v !== undefined);
        traces.push({ type: "box", name: name, y: values, boxpoints: "all", jitter: 0.4, pointpos: 0,
          xaxis: "x" + (i + 1), yaxis: "y" + (i + 1), showlegend: false, marker: { size: 4 },
          hovertemplate: name + " " + label + ": %{y:.1f}<extra></extra>" });
      }
    });
    const layout = { grid: { rows: 1, columns: measures.length, pattern: "independent" }, height: 400,
      margin: { t: 70, b: 60 }, annotations: measures.map(([, label], i) => ({ text: label, showarrow: false,
        xref: "x" + (i + 1) + " domain", yref: "y" + (i + 1) + " domain", x: 0.5, y: 1.08 })) };
    Plotly.newPlot(perfChart, traces, layout, plotConfig);
  }

  // Sample browser
  const samples = data.samples;
  const verdict = (s) => s.e ? "error" : s.c === true ? "right" : s.c === false ? "wrong" : "unscored";
  const pick = (id, values) => el("select", { id: id }, el("option", { value: "", text: "all" }),
    ...values.map((v) => el("option", { value: v, text: v })));
  const fDataset = pick("filter-dataset", [...new Set(samples.map((s) => s.d))]);
  const fSubset = pick("filter-subset", [...new Set(samples.map((s) => s.s))]);
  const fVerdict = pick("filter-verdict", ["right", "wrong", "error", "unscored"]);
  const fText = el("input", { id: "filter-text", type: "search", placeholder: "text in prompt or output" });
  const count = el("span", { id: "sample-count", class: "muted" });
  const list = el("div", { id: "sample-list" });
  const more = el("button", { id: "sample-more", type: "button", text: "show more" });
  let shown = PAGE;
  function matches() {
    const text = fText.value.toLowerCase();
    return samples.filter((s) => (!fDataset.value || s.d === fDataset.value) && (!fSubset.value || s.s === fSubset.value)
      && (!fVerdict.value || verdict(s) === fVerdict.value)
      && (!text || (s.p || "").toLowerCase().includes(text) || (s.o || "").toLowerCase().includes(text)));
  }
  function block(title, text) {
    return el("div", {}, el("h4", { text: title }), el("pre", { text: text === null || text === undefined ? "" : typeof text === "string" ? text : JSON.stringify(text) }));
  }
  function drawSamples() {
    const found = matches();
    count.textContent = found.length + " of " + samples.length + " samples";
    list.replaceChildren(...found.slice(0, shown).map((s) => el("div", { class: "sample", "data-verdict": verdict(s) },
      el("div", { class: "meta" }, el("span", { class: "badge " + verdict(s), text: verdict(s) }),
        " " + s.d + " / " + s.s + " #" + s.i + " — prompt " + fmt(s.pt) + " tokens, output " + fmt(s.ot)
        + " tokens, finish " + fmt(s.f) + (s.rt ? ", reasoning " + s.rt + " tokens" : "")
        + (s.cut ? " — cut inside its thinking" : "") + (s.e ? " — error: " + s.e : "")),
      el("div", { class: "cols" }, block("prompt (as sent)", s.p), block("model output", s.o),
        block("prediction", s.x), block("gold", s.g)))));
    more.hidden = found.length <= shown;
    const state = new URLSearchParams();
    if (fDataset.value) state.set("dataset", fDataset.value);
    if (fSubset.value) state.set("subset", fSubset.value);
    if (fVerdict.value) state.set("verdict", fVerdict.value);
    if (fText.value) state.set("text", fText.value);
    history.replaceState(null, "", state.toString() ? "#samples?" + state.toString() : location.pathname);
  }
  for (const control of [fDataset, fSubset, fVerdict]) control.addEventListener("change", () => { shown = PAGE; drawSamples(); });
  fText.addEventListener("input", () => { shown = PAGE; drawSamples(); });
  more.addEventListener("click", () => { shown += PAGE; drawSamples(); });
  // A link like report.html#samples?dataset=x&verdict=wrong opens the browser filtered (also when only
  // the address's #... changes).
  function filtersFromAddress() {
    const query = new URLSearchParams((location.hash.split("?")[1]) || "");
    fDataset.value = query.get("dataset") || ""; fSubset.value = query.get("subset") || "";
    fVerdict.value = query.get("verdict") || ""; fText.value = query.get("text") || "";
    return query;
  }
  const query = filtersFromAddress();
  window.addEventListener("hashchange", () => { filtersFromAddress(); shown = PAGE; drawSamples(); });
  section("samples", "Samples",
    samples.length ? el("div", { class: "filters" }, el("label", { text: "dataset" }), fDataset, el("label", { text: "subset" }), fSubset,
      el("label", { text: "answer" }), fVerdict, fText, count) : el("p", { class: "muted", text: "No per-sample records in this run." }),
    list, more);
  drawSamples();
  if (query.toString()) document.getElementById("samples").scrollIntoView();
  document.body.setAttribute("data-report-ready", "1");
})();
