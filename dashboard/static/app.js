// agentwatch dashboard: every page is drawn from its JSON endpoint (/api/v1/...), with the
// page's query string (range, tenant) passed through, so a URL is a shareable view. Data is only
// ever put into the page as text (textContent), never as markup.
"use strict";

const Q = new URLSearchParams(location.search);
const PAGE = document.body.dataset.page;
const main = document.getElementById("main");

// -- small DOM helpers -------------------------------------------------------------------------
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}
const usd = (v) => (v === null || v === undefined ? "–" : `$${Number(v).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`);
const usd4 = (v) => (v === null || v === undefined ? "–" : `$${Number(v).toFixed(4)}`);
const pct = (v) => (v === null || v === undefined ? "–" : `${(100 * v).toFixed(1)}%`);
const num = (v) => (v === null || v === undefined ? "–" : Number(v).toLocaleString("en-US"));
const ms = (v) => (v === null || v === undefined ? "–" : v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${Math.round(v)} ms`);
const when = (v) => (v ? v.replace("T", " ").replace(/\.\d+Z$/, "Z").replace("Z", " UTC") : "–");
const label = (agent, name) => (name && name !== agent ? `${name} (${agent})` : agent);

function keep(extra) {
  // The view's state (range, tenant) carried into a link, plus this link's own parameters.
  const params = new URLSearchParams();
  for (const key of ["since", "from", "to", "tenant"]) if (Q.get(key)) params.set(key, Q.get(key));
  for (const [key, value] of Object.entries(extra || {})) {
    if (value === null || value === undefined || value === "") params.delete(key);
    else params.set(key, value);
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}
const agentHref = (tenant, agent) => `/agents/${encodeURIComponent(agent)}${keep({ tenant })}`;
const traceHref = (id) => `/traces/${encodeURIComponent(id)}${keep({})}`;
const agentLink = (tenant, agent, name) => el("a", { href: agentHref(tenant, agent), "data-agent": agent }, label(agent, name));
const traceLink = (id) => el("a", { href: traceHref(id), class: "mono", "data-trace": id }, id.slice(0, 12) + "…");

function table(columns, rows, options) {
  // columns: [{title, value(row) -> node|text, sort(row) -> comparable, numeric}]
  const opts = options || {};
  const body = el("tbody");
  let current = rows.slice();
  let order = null;
  const draw = () => {
    body.replaceChildren(
      ...current.map((row) =>
        el("tr", { class: opts.rowClass ? opts.rowClass(row) : null },
          columns.map((c) => el("td", { class: c.numeric ? "n" : null }, c.value(row))))
      )
    );
  };
  const head = el("tr", {}, columns.map((c, i) => el("th", {
    class: c.sort ? "sortable" : null,
    onclick: c.sort ? () => {
      order = order && order.i === i ? { i, dir: -order.dir } : { i, dir: c.numeric ? -1 : 1 };
      current.sort((a, b) => {
        const x = c.sort(a), y = c.sort(b);
        return (x === y ? 0 : x === null ? 1 : y === null ? -1 : x < y ? -1 : 1) * order.dir;
      });
      draw();
    } : null,
  }, c.title)));
  const node = el("table", { class: opts.class || null }, el("thead", {}, head), body);
  node.filter = (predicate) => { current = rows.filter(predicate); draw(); };
  draw();
  return node;
}

const nodes = (parts) => parts.flat(Infinity).filter((p) => p !== null && p !== undefined && p !== false && p !== "");

function empty(message, ...more) {
  return el("div", { class: "empty" }, el("p", { text: message }), ...more);
}
function noData() {
  return empty(
    "No agent runs in this window yet.",
    el("p", {}, "Send OTLP traces to this server's receivers (by default ", el("code", { text: "127.0.0.1:4317" }), " gRPC, ",
      el("code", { text: "http://127.0.0.1:4318/v1/traces" }), " HTTP), or feed the demo: ",
      el("code", { text: "agentwatch demo" }), " (", el("code", { text: "make demo" }), "). A wider range may show older runs.")
  );
}

// -- charts (plotly.js, from the installed plotly package) ---------------------------------------
// Plotly reads a subset of HTML in labels and legend names: data going there is escaped first.
const esc = (v) => (typeof v === "string" ? v.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;") : v);
const escAll = (values) => values.map(esc);
function theme() {
  const css = getComputedStyle(document.documentElement);
  return { text: css.getPropertyValue("--text").trim(), line: css.getPropertyValue("--line").trim(),
    bad: css.getPropertyValue("--bad").trim(), accent: css.getPropertyValue("--accent").trim(),
    warn: css.getPropertyValue("--warn").trim(), ok: css.getPropertyValue("--ok").trim() };
}
function chart(title, traces, layout, className) {
  const t = theme();
  const node = el("div", { class: className || "chart", role: "img", "aria-label": title });
  const base = {
    title: { text: title, font: { size: 13 } }, margin: { l: 50, r: 15, t: 36, b: 40 },
    paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)", font: { color: t.text, size: 11 },
    xaxis: { gridcolor: t.line, zeroline: false }, yaxis: { gridcolor: t.line, zeroline: false, rangemode: "tozero" },
    legend: { orientation: "h", y: -0.2 }, showlegend: traces.length > 1,
  };
  requestAnimationFrame(() => {
    if (window.Plotly) window.Plotly.newPlot(node, traces, Object.assign(base, layout || {}), { displaylogo: false, responsive: true });
  });
  return node;
}
const SPEND_COLORS = ["#2b6cb0", "#38a169", "#d69e2e", "#805ad5", "#dd6b20"];
const FAILURE_COLORS = ["#c81e1e", "#dd6b20", "#b7791f", "#9b2c2c", "#d53f8c", "#805ad5", "#718096"];

function sparkline(values) {
  // One bar per bucket on a fixed 0-100% scale (rows compare), a bucket without runs left empty.
  const w = 96, h = 22, step = w / Math.max(values.length, 1), t = theme();
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("width", w); svg.setAttribute("height", h); svg.setAttribute("class", "spark");
  svg.setAttribute("aria-label", "failure rate per bucket");
  values.forEach((v, i) => {
    if (v === null) return;
    const bar = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    const height = Math.max(1, v * (h - 2));
    bar.setAttribute("x", (i * step).toFixed(1)); bar.setAttribute("width", Math.max(1, step - 1).toFixed(1));
    bar.setAttribute("y", (h - height).toFixed(1)); bar.setAttribute("height", height.toFixed(1));
    bar.setAttribute("fill", v > 0 ? t.bad : t.line);
    svg.append(bar);
  });
  return svg;
}

// -- the pages -------------------------------------------------------------------------------
async function api(path) {
  const response = await fetch(path, { credentials: "same-origin" });
  const doc = await response.json();
  if (!response.ok) throw new Error(doc.error || `${response.status}`);
  return doc;
}
function crossPill(loud, flag) {
  if (loud) return el("span", { class: "pill bad", text: "fails for others only", title: "the owner's runs all succeeded while other users' failed" });
  return flag ? el("span", { class: "pill", text: "others failing too", title: "users other than the owner saw failures (the owner did too)" }) : "";
}

function card(title, value, delta, worse) {
  return el("div", { class: "card" }, el("div", { class: "label", text: title }), el("div", { class: "value", text: value }),
    delta ? el("div", { class: `delta ${worse === null ? "" : worse ? "worse" : "better"}`, text: delta }) : null);
}
function change(now, before, fmt, higherIsWorse) {
  if (before === null || before === undefined || now === null || now === undefined) return [`previous: ${before === null || before === undefined ? "no runs" : fmt(before)}`, null];
  const worse = higherIsWorse ? now > before : now < before;
  return [`previous period: ${fmt(before)}`, now === before ? null : worse];
}

async function overview() {
  const [d, b] = await Promise.all([api(`/api/v1/overview${location.search}`), api("/api/v1/budgets")]);
  const parts = [el("h1", { text: "Overview" })];
  if (!d.runs.now) { parts.push(noData()); return parts; }
  const runsDelta = d.runs.previous ? `previous period: ${num(d.runs.previous)}` : "previous: no runs";
  const [rateDelta, rateWorse] = change(d.success_rate.now, d.success_rate.previous, pct, false);
  parts.push(el("div", { class: "cards" },
    card("runs", num(d.runs.now), runsDelta, null),
    card("success rate", pct(d.success_rate.now), rateDelta, rateWorse),
    card("failed runs", num(d.failures.now), `${num(d.degraded.now)} more degraded · ${d.runs.previous ? `previous period: ${num(d.failures.previous)}` : "previous: no runs"}`, d.runs.previous ? d.failures.now > d.failures.previous : null),
    card("spend", usd(d.spend_usd.now), d.runs.previous ? `previous period: ${usd(d.spend_usd.previous)}` : "previous: no runs", null),
    card("agents failing", num(d.failing_agents.length), null, null),
    card("open alerts", num(d.open_alerts.length), `${num(d.incidents)} fired in the window`, d.open_alerts.length > 0 ? true : null),
    card("fails for others only", num(d.cross_user.filter((c) => c.loud).length), "works for the owner, fails for others", d.cross_user.some((c) => c.loud) ? true : null)));
  if (b.budgets.length) {
    const today = (x) => x.burn.length ? x.burn[x.burn.length - 1].spend_usd - (x.burn.length > 1 ? x.burn[x.burn.length - 2].spend_usd : 0) : 0;
    parts.push(el("div", { class: "panel", id: "budgets" }, el("h2", {}, "Spend against budgets this month ", el("a", { href: `/cost${location.search}`, class: "pill", text: "cost page" })), table([
      { title: "budget", value: (x) => x.name },
      { title: "scope", value: (x) => [x.tenant, x.team && `team ${x.team}`, x.agent].filter(Boolean).join(" / ") || "all runs" },
      { title: "today", value: (x) => usd(today(x)), numeric: true },
      { title: "month to date", value: (x) => `${usd(x.spend_usd)} of ${usd(x.monthly_usd)}`, numeric: true },
      { title: "used", value: (x) => pct(x.used), numeric: true },
      { title: "month end (forecast)", value: (x) => x.forecast ? usd(x.forecast.month_end) : "–", numeric: true },
      { title: "state", value: (x) => x.over_budget ? el("span", { class: "pill bad", text: "over budget (hard)" }) : x.forecast_over ? el("span", { class: "pill bad", text: "forecast over" }) : el("span", { class: "pill ok", text: "ok" }) },
    ], b.budgets, { class: "overview-budgets" })));
  }
  parts.push(el("div", { class: "panel" }, el("h2", { text: "Agents failing now (by failure rate × affected users)" }),
    d.failing_agents.length ? table([
      { title: "agent", value: (a) => agentLink(a.tenant, a.agent, a.agent_name) },
      { title: "tenant", value: (a) => a.tenant },
      { title: "failure rate", value: (a) => pct(a.failure_rate), numeric: true },
      { title: "failed / runs", value: (a) => `${num(a.failures)} / ${num(a.runs)}`, numeric: true },
      { title: "affected users", value: (a) => num(a.affected_users), numeric: true },
      { title: "top failure type", value: (a) => a.top_failure_type || "–" },
      { title: "cross-user", value: (a) => crossPill(a.cross_user_loud, a.cross_user) },
    ], d.failing_agents, { class: "failing-agents" }) : el("p", { class: "muted", text: "No agent has failed runs in this window." })));
  const t = theme();
  parts.push(el("div", { class: "grid2" },
    el("div", { class: "panel" }, chart("run latency p95 (ms)", [{ x: d.latency_p95.map((b) => b.start), y: d.latency_p95.map((b) => b.p95_ms), type: "scatter", mode: "lines+markers", line: { color: t.accent }, name: "p95" }])),
    el("div", { class: "panel" }, el("h2", { text: "Open alerts" }),
      d.open_alerts.length ? table([
        { title: "rule", value: (a) => a.rule },
        { title: "agent", value: (a) => a.agent === "*" ? "all agents" : agentLink(a.tenant, a.agent, a.agent_name) },
        { title: "what", value: (a) => a.summary },
        { title: "since", value: (a) => when(a.fired_at) },
      ], d.open_alerts) : el("p", { class: "muted", text: "No alert is firing." }))));
  parts.push(el("div", { class: "grid2" },
    el("div", { class: "panel" }, el("h2", { text: "Works for the owner, fails for others" }),
      d.cross_user.some((c) => c.loud) ? el("ul", {}, d.cross_user.filter((c) => c.loud).map((c) => el("li", {}, agentLink(c.tenant, c.agent, c.agent_name), `: ${c.others} other user(s) had failures; all ${c.owner_runs} of the owner's (${c.owner}) runs succeeded`))) : el("p", { class: "muted", text: "No agent fails only for users other than its owner." }),
      d.cross_user.some((c) => !c.loud) ? el("p", { class: "muted" }, "Others failing too (the owner also failed): ", d.cross_user.filter((c) => !c.loud).map((c, i) => [i ? ", " : "", agentLink(c.tenant, c.agent, c.agent_name)])) : null),
    el("div", { class: "panel" }, el("h2", { text: "Eval regressions and canary drops" }),
      d.regressions.length ? table([
        { title: "when", value: (e) => when(e.time) },
        { title: "agent", value: (e) => agentLink(e.tenant, e.agent, null) },
        { title: "event", value: (e) => e.event },
        { title: "dimensions", value: (e) => Object.entries(e.dimensions).map(([k, v]) => `${k} ${Number(v).toFixed(2)}`).join(", ") },
      ], d.regressions) : el("p", { class: "muted", text: "No regression flagged by scheduled evals or canaries." }))));
  return parts;
}

async function agents() {
  const d = await api(`/api/v1/agents${location.search}`);
  const parts = [el("h1", { text: "Agents" })];
  if (!d.agents.length) { parts.push(noData()); return parts; }
  const list = table([
    { title: "agent", value: (a) => agentLink(a.tenant, a.agent, a.agent_name), sort: (a) => label(a.agent, a.agent_name) },
    { title: "tenant", value: (a) => a.tenant, sort: (a) => a.tenant },
    { title: "runs", value: (a) => num(a.runs), sort: (a) => a.runs, numeric: true },
    { title: "failure rate", value: (a) => pct(a.failure_rate), sort: (a) => a.failure_rate, numeric: true },
    { title: "trend", value: (a) => sparkline(a.trend) },
    { title: "p95", value: (a) => ms(a.latency_ms.p95), sort: (a) => a.latency_ms.p95, numeric: true },
    { title: "affected users", value: (a) => num(a.affected_users.count), sort: (a) => a.affected_users.count, numeric: true },
    { title: "last failure", value: (a) => when(a.last_failure_at), sort: (a) => a.last_failure_at },
    { title: "owner", value: (a) => a.owner || "–", sort: (a) => a.owner },
    { title: "cross-user", value: (a) => crossPill(a.cross_user.loud, a.cross_user.flag), sort: (a) => (a.cross_user.loud ? 2 : a.cross_user.flag ? 1 : 0) },
  ], d.agents.slice().sort((x, y) => y.failure_rate * Math.max(y.affected_users.count, 1) - x.failure_rate * Math.max(x.affected_users.count, 1)), { class: "agents" });
  const search = el("input", { type: "search", class: "search", placeholder: "Search agents, owners, tenants", "aria-label": "search agents" });
  const failingOnly = el("input", { type: "checkbox", id: "failing-only" });
  const apply = () => {
    const text = search.value.trim().toLowerCase();
    list.filter((a) => (!failingOnly.checked || a.failures > 0) &&
      [a.agent, a.agent_name, a.owner, a.tenant].some((v) => v && v.toLowerCase().includes(text)));
  };
  search.addEventListener("input", apply);
  failingOnly.addEventListener("change", apply);
  parts.push(el("div", { class: "toolbar" }, search, el("label", {}, failingOnly, " failing only")), el("div", { class: "panel" }, list));
  return parts;
}

async function agentPage() {
  const agent = document.body.dataset.agent;
  const d = await api(`/api/v1/agents/${encodeURIComponent(agent)}${location.search}`);
  const a = d.agent;
  const parts = [];
  if (!a) { parts.push(el("h1", { text: agent }), empty("No production runs of this agent in this window; its eval runs are below.")); parts.push(evalSection(d.evals)); return parts; }
  parts.push(el("h1", {}, label(a.agent, a.agent_name), el("span", { class: "muted", text: ` · tenant ${a.tenant} · owner ${a.owner || "unknown"}` })));
  if (a.cross_user.loud) parts.push(el("div", { class: "loud", id: "cross-user", text: `Works for the owner, fails for others: ${a.cross_user.other_users_failing} other user(s) had ${a.cross_user.other_user_failures} failed run(s) while all ${a.cross_user.owner_runs} of the owner's runs succeeded.` }));
  else if (a.cross_user.flag) parts.push(el("div", { class: "panel", id: "cross-user", text: `Other users are failing too: ${a.cross_user.other_users_failing} user(s) besides the owner had ${a.cross_user.other_user_failures} failed run(s); the owner had ${a.cross_user.owner_failures} of ${a.cross_user.owner_runs}.` }));
  parts.push(el("div", { class: "cards" },
    card("runs", num(a.runs)), card("failure rate", pct(a.failure_rate)), card("degraded", num(a.degraded)),
    card("latency p50 / p90 / p99 (s)", [a.latency_ms.p50, a.latency_ms.p90, a.latency_ms.p99].map((v) => (v / 1000).toFixed(1)).join(" / ")),
    card("affected users", num(a.affected_users.count))));
  const t = theme();
  const x = a.buckets.map((b) => b.start);
  const types = d.failure_types_over_time;
  parts.push(el("div", { class: "grid2" },
    el("div", { class: "panel" }, chart("failure rate per bucket", [{ x, y: a.buckets.map((b) => b.failure_rate === null ? null : 100 * b.failure_rate), type: "bar", marker: { color: t.bad }, name: "failure rate %" }], { yaxis: { range: [0, 100], title: { text: "%" }, gridcolor: t.line } })),
    el("div", { class: "panel" }, chart("run latency (ms)", ["p50_ms", "p90_ms", "p99_ms"].map((k, i) => ({ x, y: a.buckets.map((b) => b[k]), type: "scatter", mode: "lines+markers", name: k.replace("_ms", ""), line: { color: [t.accent, t.warn, t.bad][i] } })))),
    el("div", { class: "panel" }, chart("failed and degraded runs by failure type", Object.entries(types.series).map(([name, values], i) => ({ x: types.starts, y: values, type: "bar", name: esc(name), marker: { color: FAILURE_COLORS[i % FAILURE_COLORS.length] } })), { barmode: "stack" }))));
  parts.push(el("div", { class: "grid2" },
    el("div", { class: "panel" }, el("h2", { text: "Users" }), table([
      { title: "user", value: (u) => u.is_owner ? el("span", {}, u.user_id || "(unknown)", " ", el("span", { class: "pill ok", text: "owner" })) : (u.user_id || "(unknown)") },
      { title: "failed / runs", value: (u) => `${num(u.failures)} / ${num(u.runs)}`, numeric: true, sort: (u) => u.failures },
      { title: "last failure", value: (u) => when(u.last_failure_at) },
    ], d.users, { rowClass: (u) => u.is_owner ? "owner" : null, class: "users" })),
    el("div", { class: "panel" }, el("h2", { text: "Steps that fail most" }), d.steps.length ? table([
      { title: "step", value: (s) => s.step }, { title: "operation", value: (s) => s.operation },
      { title: "model", value: (s) => s.model || "" },
      { title: "failed / spans", value: (s) => `${num(s.failed)} / ${num(s.spans)}`, numeric: true },
      { title: "failure type", value: (s) => s.failure_type || "" }, { title: "p95", value: (s) => ms(s.p95_ms), numeric: true },
    ], d.steps, { class: "steps" }) : el("p", { class: "muted", text: "No spans in this window." }))));
  const casesHref = (cluster) => `/api/v1/agents/${encodeURIComponent(a.agent)}/cases.jsonl${keep({ tenant: a.tenant, cluster })}`;
  const f = a.feedback;
  const implicit = el("p", { class: "muted", id: "implicit", text: "Reading requeries, abandoned sessions and failure streaks…" });
  const implicitOverTime = el("div", { id: "implicit-over-time" });
  api(`/api/v1/agents/${encodeURIComponent(agent)}/implicit${location.search}`).then((r) => {
    const i = r.implicit;
    implicit.className = "";
    const rate = (v) => (v === null ? null : 100 * v);
    if (i.buckets.some((b) => b.runs || b.sessions)) implicitOverTime.replaceChildren(chart("asked again and abandoned, per bucket", [
      { x: i.buckets.map((b) => b.start), y: i.buckets.map((b) => rate(b.requery_rate)), type: "scatter", mode: "lines+markers", name: "runs asked again %", line: { color: t.warn }, connectgaps: false },
      { x: i.buckets.map((b) => b.start), y: i.buckets.map((b) => rate(b.abandonment_rate)), type: "scatter", mode: "lines+markers", name: "sessions abandoned %", line: { color: t.bad }, connectgaps: false },
    ], { yaxis: { range: [0, 100], title: { text: "%" }, gridcolor: t.line } }));
    implicit.replaceChildren(`Implicit: ${num(i.requeried_runs)} of ${num(i.runs)} runs asked again (${pct(i.requery_rate)}), `,
      i.sessions ? `${num(i.abandoned_sessions)} of ${num(i.sessions)} sessions abandoned (${pct(i.abandonment_rate)}), ` : "no sessions, ",
      `${num(i.cancelled_runs)} cancelled, ${num(i.users_on_failure_streaks)} user(s) on failure streaks (longest ${num(i.longest_failure_streak)}).`,
      r.fallbacks && r.fallbacks.fell_back ? ` Fallbacks: ${num(r.fallbacks.fell_back)} of ${num(r.fallbacks.runs)} runs fell back (${Object.entries(r.fallbacks.reasons).map(([k, n]) => `${k} ${n}`).join(", ")}); ${pct(r.fallbacks.success_rate_with)} of them succeeded, ${pct(r.fallbacks.success_rate_without)} of the others${r.fallbacks.followed_advice ? `; ${num(r.fallbacks.followed_advice)} following agentwatch's advice` : ""}.` : "");
  }).catch((error) => { implicit.textContent = `Implicit feedback could not be read: ${error.message}`; });
  const feedbackParts = f ? [el("p", {},
    `${num(f.pieces)} piece(s) on ${num(f.runs_with_feedback)} run(s): `, el("strong", { text: `${pct(f.negative_rate)} negative` }),
    f.mean_rating === null ? "" : `, mean rating ${f.mean_rating.toFixed(1)} of 5`,
    f.negative_rate_failed === null && f.negative_rate_succeeded === null ? "" : `; negative on failed runs ${pct(f.negative_rate_failed)}, on successful runs ${pct(f.negative_rate_succeeded)}.`),
    el("div", { class: "grid2" },
      chart("negative feedback per bucket", [{ x: f.buckets.map((b) => b.start), y: f.buckets.map((b) => b.negative_rate === null ? null : 100 * b.negative_rate), type: "bar", marker: { color: t.warn }, name: "negative %", text: f.buckets.map((b) => b.pieces ? `${b.negative} of ${b.pieces}` : ""), textposition: "none", hoverinfo: "x+y+text" }], { yaxis: { range: [0, 100], title: { text: "%" }, gridcolor: t.line } }),
      el("div", {},
        table([
          { title: "failure type of the run", value: (r) => r.failure_type === "none" ? "(did not fail)" : r.failure_type },
          { title: "feedback", value: (r) => num(r.pieces), numeric: true },
          { title: "negative", value: (r) => `${num(r.negative)} (${pct(r.negative_rate)})`, numeric: true },
        ], f.by_failure_type, { class: "feedback-types" }),
        f.judge_scores.length ? table([
          { title: "judge dimension", value: (r) => r.dimension },
          { title: "mean on runs rated down", value: (r) => r.mean_on_negative === null ? "–" : `${r.mean_on_negative.toFixed(2)} (${num(r.runs_negative)})`, numeric: true },
          { title: "mean on the others", value: (r) => r.mean_on_other === null ? "–" : `${r.mean_on_other.toFixed(2)} (${num(r.runs_other)})`, numeric: true },
        ], f.judge_scores, { class: "feedback-judges" }) : el("p", { class: "muted", text: "No judge scores on the runs with feedback." })))]
    : [el("p", { class: "muted" }, "No feedback on these runs: post thumbs, ratings or scores to ", el("code", { text: "POST /api/v1/feedback" }), " (README, Feedback), or send gen_ai.evaluation.result span events or log records.")];
  parts.push(el("div", { class: "panel", id: "feedback" }, el("h2", { text: "Users' feedback" }), implicit, implicitOverTime, ...feedbackParts));
  parts.push(el("div", { class: "panel" }, el("h2", {}, "Failure signals ", el("a", { href: casesHref(null), download: "", class: "pill", text: "export all as eval cases" })),
    d.signals.length ? table([
      { title: "signal", value: (s) => el("span", { class: "mono", text: s.id }) }, { title: "failure type", value: (s) => s.failure_type },
      { title: "message template", value: (s) => s.template || "" }, { title: "runs", value: (s) => num(s.count), numeric: true },
      { title: "users", value: (s) => num(s.affected_users), numeric: true }, { title: "last seen", value: (s) => when(s.last_seen) },
      { title: "examples", value: (s) => el("span", {}, s.example_trace_ids.map((id) => [traceLink(id), " "])) },
      { title: "", value: (s) => el("a", { href: casesHref(s.id), download: "", text: "eval cases" }) },
    ], d.signals, { class: "signals" }) : el("p", { class: "muted", text: "No failed or degraded runs: nothing to cluster." })));
  parts.push(el("div", { class: "panel" }, el("h2", { text: "Recent failed and degraded runs" }), d.recent_failures.length ? table([
    { title: "trace", value: (r) => traceLink(r.trace_id) }, { title: "when", value: (r) => when(r.start_time) },
    { title: "outcome", value: (r) => el("span", { class: r.outcome === "failure" ? "pill bad" : "pill", text: r.outcome }) },
    { title: "failure type", value: (r) => r.failure_type }, { title: "user", value: (r) => r.user_id || "" },
    { title: "error", value: (r) => (r.error_message || "").slice(0, 160) }, { title: "duration", value: (r) => ms(r.duration_ms), numeric: true },
  ], d.recent_failures, { class: "recent" }) : el("p", { class: "muted", text: "No failed or degraded run in this window." })));
  parts.push(evalSection(d.evals));
  return parts;
}

function vsBaseline(run, base) {
  // Per dimension, the change of the mean from the pinned baseline run (points of 10).
  if (!base) return "no baseline in range";
  if (run.run_id === base.run_id) return el("span", { class: "pill ok", text: "baseline" });
  const parts = Object.entries(run.dimension_scores).filter(([k]) => k in base.dimension_scores)
    .map(([k, v]) => `${k} ${v - base.dimension_scores[k] >= 0 ? "+" : ""}${(v - base.dimension_scores[k]).toFixed(1)}`);
  return parts.join(", ") || "–";
}

function evalSection(evals) {
  const runs = evals.runs;
  const pinned = Object.entries(evals.baselines).map(([k, v]) => `${k}: ${v.run_id}`).join(" · ");
  const section = el("div", { class: "panel" }, el("h2", { text: "Eval runs" }), pinned ? el("p", { class: "muted", text: `pinned ${pinned}` }) : null);
  if (!runs.length) { section.append(el("p", { class: "muted", text: "No eval run in this window (agentwatch eval run, or a synthetic receiver)." })); return section; }
  const flagged = new Set(evals.events.map((e) => e.run_id));
  const pin = evals.baselines.baseline;
  const base = pin ? runs.find((r) => r.run_id === pin.run_id) : null;
  const dims = [...new Set(runs.flatMap((r) => Object.keys(r.dimension_scores)))].sort();
  section.append(chart("scores per dimension", dims.map((dim) => ({ x: runs.map((r) => r.started_at), y: runs.map((r) => r.dimension_scores[dim] ?? null), type: "scatter", mode: "lines+markers", name: esc(dim) }))));
  section.append(table([
    { title: "run", value: (r) => el("span", { class: "mono", text: r.run_id }) }, { title: "kind", value: (r) => r.kind },
    { title: "dataset", value: (r) => r.dataset }, { title: "started", value: (r) => when(r.started_at) },
    { title: "cases", value: (r) => num(r.cases), numeric: true },
    { title: "overall", value: (r) => r.overall_score === null ? "–" : Number(r.overall_score).toFixed(2), numeric: true },
    { title: "vs baseline", value: (r) => vsBaseline(r, base) },
    { title: "", value: (r) => flagged.has(r.run_id) ? el("span", { class: "pill bad", text: r.kind === "canary" ? "canary drop" : "regression" }) : "" },
  ], runs, { class: "eval-runs" }));
  return section;
}

async function tracePage() {
  const id = document.body.dataset.trace_id;
  const asked = new URLSearchParams(location.search).get("tenant");
  const d = await api(`/api/v1/traces/${encodeURIComponent(id)}${asked ? `?tenant=${encodeURIComponent(asked)}` : ""}`);
  const run = d.run;
  const parts = [el("h1", {}, "Trace ", el("span", { class: "mono", text: d.trace_id }))];
  if (d.other_tenants.length) parts.push(el("p", { class: "muted" }, `Tenant ${d.tenant}'s trace; a trace of this id is in `,
    ...d.other_tenants.flatMap((t, i) => [i ? ", " : "", el("a", { href: `/traces/${encodeURIComponent(d.trace_id)}?tenant=${encodeURIComponent(t)}`, text: `tenant ${t}` })]), " too."));
  if (run) {
    parts.push(el("p", {}, agentLink(run.tenant, run.agent, run.agent_name), ` · ${when(run.start_time)} · ${ms(run.duration_ms)} · user ${run.user_id || "unknown"} · `,
      el("span", { class: run.outcome === "success" ? "pill ok" : "pill bad", text: run.outcome }), run.failure_type ? ` ${run.failure_type}` : ""));
    if (run.error_message) parts.push(el("p", { class: "error", text: run.error_message }));
  }
  const detail = el("div", { class: "panel", id: "span-detail" });
  const total = Math.max(d.duration_ms, 0.001);
  const failing = run ? run.failing_span_id : null;
  const rows = d.spans.map((s) => {
    const bad = s.status === "error" || s.failure_type;
    const row = el("div", { class: `row${s.span_id === failing ? " failing" : ""}`, "data-span": s.span_id, tabindex: 0 },
      el("div", { class: "name", style: `padding-left:${s.depth * 16}px`, title: s.name }, s.name, s.tool_name || s.model ? el("span", { class: "muted", text: ` ${s.tool_name || s.model}` }) : "", s.failure_type ? el("span", { class: "pill bad", text: s.failure_type }) : ""),
      el("div", { class: "track" }, el("div", { class: `bar${bad ? " error" : ""}`, style: `left:${(100 * s.offset_ms / total).toFixed(3)}%;width:${(100 * s.duration_ms / total).toFixed(3)}%` })),
      el("div", { class: "n", text: ms(s.duration_ms) }));
    const show = () => { document.querySelectorAll(".wf .row.selected").forEach((r) => r.classList.remove("selected")); row.classList.add("selected"); detail.replaceChildren(...nodes(spanDetail(s, d.scores))); };
    row.addEventListener("click", show);
    row.addEventListener("keydown", (e) => { if (e.key === "Enter") show(); });
    return row;
  });
  if (d.spans_total > d.spans.length) parts.push(el("p", { class: "muted", text: `The first ${d.spans.length} of ${d.spans_total} spans, by start time.` }));
  const logsPanel = !d.logs_total ? "" : (() => {
    const spanName = new Map(d.spans.map((s) => [s.span_id, s.name]));
    return el("div", { class: "panel", id: "trace-logs" }, el("h2", { text: `Log records (${num(d.logs_total)})` }),
      d.logs_total > d.logs.length ? el("p", { class: "muted", text: `The first ${d.logs.length} of ${d.logs_total}, by time.` }) : "",
      table([
        { title: "time", value: (r) => when(r.time) },
        { title: "severity", value: (r) => r.severity_text || (r.severity_number ? String(r.severity_number) : "") },
        { title: "event", value: (r) => r.event_name || "" },
        { title: "span", value: (r) => r.span_id ? el("span", { class: "mono", title: r.span_id, text: spanName.get(r.span_id) || r.span_id.slice(0, 8) }) : "" },
        { title: "body", value: (r) => el("span", { class: "logbody", text: r.body || "" }) },
      ], d.logs, { class: "logs" }));
  })();
  parts.push(el("div", { class: "panel wf" }, rows), logsPanel, detail);
  const first = d.spans.find((s) => s.span_id === failing) || d.spans[0];
  detail.replaceChildren(...nodes(spanDetail(first, d.scores)));
  rows[d.spans.indexOf(first)].classList.add("selected");
  return parts;
}

function spanDetail(s, scores) {
  const fields = ["operation", "kind", "status", "status_message", "failure_type", "error_type", "error_message", "model", "provider", "tool_name",
    "input_tokens", "output_tokens", "cached_tokens", "cost_usd", "agent_id", "agent_name", "user_id", "session_id", "service_name", "scope_name", "start_time", "duration_ms"];
  const mine = scores.filter((x) => x.span_id === s.span_id);
  return [
    el("h2", {}, s.name, " ", el("span", { class: "mono muted", text: s.span_id })),
    el("dl", { class: "kv" }, fields.filter((f) => s[f] !== null && s[f] !== undefined && s[f] !== "").map((f) => [el("dt", { text: f }), el("dd", { text: String(s[f]) })])),
    s.input_text ? [el("h2", { text: "input" }), el("pre", { text: s.input_text })] : null,
    s.output_text ? [el("h2", { text: "output" }), el("pre", { text: s.output_text })] : null,
    mine.length ? [el("h2", { text: "judge scores" }), table([{ title: "dimension", value: (x) => x.dimension }, { title: "value", value: (x) => x.value, numeric: true }, { title: "label", value: (x) => x.label || "" }, { title: "by", value: (x) => x.evaluator }, { title: "why", value: (x) => x.explanation || "" }], mine)] : null,
    el("h2", { text: "attributes" }), el("pre", { text: JSON.stringify(s.attributes, null, 2) }),
    s.events && s.events.length ? [el("h2", { text: "events" }), el("pre", { text: JSON.stringify(s.events, null, 2) })] : null,
    el("h2", { text: "resource" }), el("pre", { text: JSON.stringify(s.resource_attributes, null, 2) }),
  ];
}

async function operations() {
  const d = await api(`/api/v1/operations${location.search}`);
  const t = theme();
  const parts = [el("h1", {}, "Operations ", el("span", { class: "muted", text: "· refreshes every 15 s" }))];
  const x = d.per_step.map((b) => b.start);
  parts.push(el("div", { class: "panel" }, chart(`runs and failures per ${d.step_seconds / 60} min`, [
    { x, y: d.per_step.map((b) => b.runs), type: "bar", name: "runs", marker: { color: t.accent } },
    { x, y: d.per_step.map((b) => b.failures), type: "bar", name: "failed", marker: { color: t.bad } }], { barmode: "overlay" })));
  const agentsList = [...new Set(d.heatmap.map((h) => h.agent))], steps = [...new Set(d.heatmap.map((h) => h.step))];
  const z = agentsList.map((a) => steps.map((s) => (d.heatmap.find((h) => h.agent === a && h.step === s) || { failed: null }).failed));
  parts.push(el("div", { class: "grid2" },
    el("div", { class: "panel" }, d.heatmap.length ? chart("failing spans: agent × step", [{ type: "heatmap", x: escAll(steps), y: escAll(agentsList), z, colorscale: [[0, "#fcd9d9"], [1, "#b91c1c"]], hoverongaps: false }], { margin: { l: 20, r: 15, t: 36, b: 90 }, yaxis: { automargin: true }, xaxis: { automargin: true } }) : el("p", { class: "muted", text: "No failing span in this window." })),
    el("div", { class: "panel" }, el("h2", { text: "Error taxonomy" }), d.taxonomy.length ? table([
      { title: "failure type", value: (r) => r.failure_type }, { title: "runs", value: (r) => num(r.runs), numeric: true },
      { title: "agents", value: (r) => el("span", {}, r.agent_list.map((a, i) => [i ? ", " : "", agentLink(a.tenant, a.agent, a.name)])) },
      { title: "examples", value: (r) => el("span", {}, r.example_trace_ids.map((id) => [traceLink(id), " "])) },
    ], d.taxonomy, { class: "taxonomy" }) : el("p", { class: "muted", text: "No failed or degraded run." }))));
  const kinds = ["model", "tool", "provider"];
  parts.push(el("div", { class: "grid2" }, kinds.map((k) => {
    const groups = d.latency.filter((l) => l.kind === k);
    return el("div", { class: "panel" }, groups.length ? chart(`span duration by ${k} (ms, log scale)`, groups.map((g) => ({ x: g.histogram.map((b) => Math.max(b.ms, 50)), y: g.histogram.map((b) => b.spans), type: "scatter", mode: "lines", line: { shape: "hvh", width: 1.5 }, name: esc(`${g.key} (p50 ${ms(g.p50_ms)}, p99 ${ms(g.p99_ms)})`) })), { legend: { orientation: "h", y: -0.15 }, margin: { l: 50, r: 15, t: 36, b: 30 }, xaxis: { type: "log", gridcolor: t.line }, yaxis: { gridcolor: t.line, title: { text: "spans" }, rangemode: "tozero" } }, "chart tall") : el("p", { class: "muted", text: `No ${k} spans.` }));
  })));
  parts.push(el("div", { class: "panel" }, el("h2", { text: `Retry storms (≥ ${d.storm_threshold_per_minute} failures of one tool or model in a minute)` }), d.retry_storms.length ? table([
    { title: "minute", value: (s) => when(s.minute) }, { title: "tool or model", value: (s) => s.target },
    { title: "failed spans", value: (s) => num(s.failed), numeric: true }, { title: "traces", value: (s) => num(s.traces), numeric: true },
    { title: "failure type", value: (s) => s.failure_type || "" },
  ], d.retry_storms) : el("p", { class: "muted", text: "No retry storm." })));
  setTimeout(() => render(), 15000);
  return parts;
}

async function evalsPage() {
  const d = await api(`/api/v1/evals${location.search}`);
  const parts = [el("h1", { text: "Evals" })];
  if (!d.runs.length) { parts.push(empty("No eval run in this window.", el("p", {}, "Run one: ", el("code", { text: "agentwatch eval run --agent expense-bot --dataset examples/expense_eval.csv --target python:examples/expense_agent.py:answer" }), ", or schedule one with a synthetic receiver (README, Evals)."))); return parts; }
  const byAgent = {};
  for (const r of d.runs) (byAgent[`${r.tenant}\u0000${r.agent}`] ||= []).push(r);
  for (const [key, runs] of Object.entries(byAgent)) {
    const [tenant, agent] = key.split("\u0000");
    const baselines = Object.fromEntries(d.baselines.filter((b) => b.tenant === tenant && b.agent === agent).map((b) => [b.kind, b]));
    parts.push(el("h2", {}, agentLink(tenant, agent, null), el("span", { class: "muted", text: ` · tenant ${tenant}` })),
      evalSection({ runs, baselines, events: d.events.filter((e) => e.tenant === tenant && e.agent === agent) }));
  }
  return parts;
}

async function alertsPage() {
  const d = await api(`/api/v1/alerts${location.search}`);
  const parts = [el("h1", { text: "Alerts" })];
  if (!d.events.length) { parts.push(empty("No alert fired, repeated or resolved in this window.", el("p", {}, "Rules live in the config's ", el("code", { text: "alerts:" }), " section (README, Alerts)."))); return parts; }
  parts.push(el("div", { class: "panel" }, table([
    { title: "when", value: (e) => when(e.time), sort: (e) => e.time },
    { title: "state", value: (e) => el("span", { class: e.state === "resolved" ? "pill ok" : "pill bad", text: e.state }), sort: (e) => e.state },
    { title: "rule", value: (e) => e.rule, sort: (e) => e.rule },
    { title: "agent", value: (e) => e.agent === "*" ? "all agents" : agentLink(e.tenant, e.agent, e.agent_name), sort: (e) => e.agent },
    { title: "value vs threshold", value: (e) => `${e.value} vs ${e.threshold}`, numeric: true },
    { title: "what", value: (e) => e.summary },
    { title: "traces", value: (e) => el("span", {}, e.example_trace_ids.map((id) => [traceLink(id), " "])) },
    { title: "delivered", value: (e) => e.delivered.join(", ") || "–" },
  ], d.events, { class: "alert-events" })));
  return parts;
}

function burnChart(budgets) {
  // Each budget's spend to date as a share of it, day by day, and the forecast to the month's
  // end with its interval (a band); 100% is the budget.
  const traces = [];
  budgets.forEach((x, i) => {
    const color = SPEND_COLORS[i % SPEND_COLORS.length];
    const days = x.burn.map((p) => p.day), used = x.burn.map((p) => p.spend_usd / x.monthly_usd);
    traces.push({ x: days, y: used, type: "scatter", mode: "lines+markers", name: esc(x.name), line: { color } });
    if (x.forecast && days.length) {
      const [y, m] = x.month.split("-").map(Number);
      const end = new Date(Date.UTC(y, m, 0)).toISOString().slice(0, 10);
      const last = days[days.length - 1], now = used[used.length - 1];
      traces.push({ x: [last, end, end, last], y: [now, x.forecast.high / x.monthly_usd, x.forecast.low / x.monthly_usd, now],
        type: "scatter", mode: "lines", fill: "toself", fillcolor: color + "22", line: { width: 0 }, hoverinfo: "skip", showlegend: false });
      traces.push({ x: [last, end], y: [now, x.forecast.month_end / x.monthly_usd], type: "scatter", mode: "lines",
        line: { color, dash: "dash" }, name: `${esc(x.name)} forecast`, showlegend: false });
    }
  });
  return chart("Budget burn this month: spend to date and the forecast to month end (share of budget)", traces,
    { yaxis: { tickformat: ".0%", rangemode: "tozero", gridcolor: theme().line },
      shapes: [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: 1, y1: 1, line: { color: "#c81e1e", width: 1, dash: "dot" } }] });
}

async function costPage() {
  const by = Q.get("by") || "agent";
  const params = new URLSearchParams(location.search);
  params.set("by", by);
  const [d, b, w] = await Promise.all([api(`/api/v1/cost?${params}`), api("/api/v1/budgets"), api(`/api/v1/cost/leaks${location.search}`)]);
  const pick = el("select", { id: "cost-by", "aria-label": "spend by" }, ["agent", "tenant", "user", "team", "org", "workspace", "project", "workflow", "model", "provider"].map((k) => el("option", { value: k, text: k })));
  pick.value = by;
  pick.addEventListener("change", () => { const params = new URLSearchParams(location.search); params.set("by", pick.value); location.search = params.toString(); });
  const parts = [el("h1", {}, "Cost ", el("span", { class: "muted", text: `· ${usd(d.total_usd)} in the window` })), el("div", { class: "toolbar" }, el("label", {}, "spend by ", pick))];
  if (!d.rows.length) { parts.push(noData()); return parts; }
  parts.push(el("div", { class: "panel" }, chart(`spend per bucket, the ${Object.keys(d.series).length} largest by ${by} (USD)`,
    Object.entries(d.series).map(([name, values], i) => ({ x: d.starts, y: values, type: "bar", name: esc(name), marker: { color: SPEND_COLORS[i % SPEND_COLORS.length] } })), { barmode: "stack" })));
  const runDim = !["model", "provider"].includes(by);
  parts.push(el("div", { class: "panel" }, el("h2", { text: `Spend by ${by}` }), table([
    { title: by, value: (r) => by === "agent" ? agentLink(Q.get("tenant"), r.id, r.key !== r.id ? r.key.slice(0, r.key.lastIndexOf(" (")) : null) : r.key, sort: (r) => r.key },
    { title: "spend", value: (r) => usd(r.spend_usd), sort: (r) => r.spend_usd, numeric: true },
    { title: "share", value: (r) => pct(r.share), sort: (r) => r.share, numeric: true },
    { title: runDim ? "runs" : "calls", value: (r) => num(r.count), sort: (r) => r.count, numeric: true },
    { title: runDim ? "per run" : "per call", value: (r) => usd4(r.spend_per_count), numeric: true },
    { title: "per successful run", value: (r) => usd4(r.spend_per_successful_run), numeric: true },
    { title: "tokens in / out", value: (r) => `${num(r.input_tokens)} / ${num(r.output_tokens)}`, numeric: true },
    { title: "cache hits", value: (r) => pct(r.cache_hit_ratio), numeric: true },
  ], d.rows, { class: "cost-rows" })));
  parts.push(el("div", { class: "panel" }, el("h2", { text: "Where money leaks" }),
    el("p", { class: "muted", text: "Spend that bought nothing, per agent: failed runs, retried calls, loops, prompts over 3× the agent's median, and tool output the answer never used (an estimate). Each call counts once in wasted." }),
    w.leaks.length ? table([
      { title: "agent", value: (x) => agentLink(x.tenant, x.agent, x.agent_name), sort: (x) => x.agent_name || x.agent },
      { title: "tenant", value: (x) => x.tenant },
      { title: "spend", value: (x) => usd4(x.spend_usd), sort: (x) => x.spend_usd, numeric: true },
      { title: "wasted", value: (x) => usd4(x.wasted_usd), sort: (x) => x.wasted_usd, numeric: true },
      { title: "share", value: (x) => pct(x.wasted_share), sort: (x) => x.wasted_share, numeric: true },
      { title: "failed runs", value: (x) => usd4(x.failed_runs_usd), sort: (x) => x.failed_runs_usd, numeric: true },
      { title: "retries", value: (x) => `${usd4(x.retries_usd)} (${num(x.retried_calls)})`, sort: (x) => x.retries_usd, numeric: true },
      { title: "loops", value: (x) => usd4(x.loops_usd), sort: (x) => x.loops_usd, numeric: true },
      { title: "oversized prompts", value: (x) => `${usd4(x.oversized_usd)} (${num(x.oversized_calls)})`, sort: (x) => x.oversized_usd, numeric: true },
      { title: "unused tool output", value: (x) => `${usd4(x.unused_tool_output_usd)} (${num(x.unused_tool_calls)})`, sort: (x) => x.unused_tool_output_usd, numeric: true },
    ], w.leaks, { class: "leaks" }) : el("p", { class: "muted", text: "No model or tool calls in this window." })));
  if (d.cost_unknown_model.length) parts.push(el("p", { class: "error", text: `No price known for: ${d.cost_unknown_model.map((m) => `${m.model} (${m.calls} calls)`).join(", ")}; give one in processors.cost.models.` }));
  if (b.budgets.length) parts.push(el("div", { class: "panel" }, burnChart(b.budgets)));
  parts.push(el("div", { class: "panel" }, el("h2", { text: "Budgets this month" }), b.budgets.length ? table([
    { title: "budget", value: (x) => x.name }, { title: "scope", value: (x) => [x.tenant, x.team && `team ${x.team}`, x.agent].filter(Boolean).join(" / ") || "all runs" },
    { title: "monthly", value: (x) => usd(x.monthly_usd), numeric: true }, { title: "spent", value: (x) => usd(x.spend_usd), numeric: true },
    { title: "used", value: (x) => pct(x.used), numeric: true },
    { title: "left (variance)", value: (x) => x.variance_usd < 0 ? `−${usd(-x.variance_usd)}` : usd(x.variance_usd), numeric: true },
    { title: "month end (forecast)", value: (x) => x.forecast ? `${usd(x.forecast.month_end)} (${usd(x.forecast.low)} – ${usd(x.forecast.high)})` : "–", numeric: true },
    { title: "state", value: (x) => x.over_budget ? el("span", { class: "pill bad", text: "over budget (hard)" }) : x.forecast_over ? el("span", { class: "pill bad", text: "forecast over" }) : el("span", { class: "pill ok", text: "ok" }) },
  ], b.budgets, { class: "budgets" }) : el("p", { class: "muted" }, "No budgets: add them in the config's ", el("code", { text: "budgets:" }), " section (README, Cost).")));
  return parts;
}

// -- controls and start ------------------------------------------------------------------------
const PAGES = { overview, agents, agent: agentPage, trace: tracePage, operations, cost: costPage, evals: evalsPage, alerts: alertsPage };

async function render() {
  // Plotly keeps a resize listener per chart until it is purged: purge before redrawing.
  if (window.Plotly) document.querySelectorAll(".js-plotly-plot").forEach((n) => window.Plotly.purge(n));
  try {
    const parts = await PAGES[PAGE]();
    main.replaceChildren(...nodes(parts));
  } catch (error) {
    main.replaceChildren(el("div", { class: "empty error", role: "alert" }, el("p", { text: `Could not load this page: ${error.message}` })));
  }
}

function localInput(iso) {
  const d = new Date(iso);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

async function controls() {
  const range = document.getElementById("range"), custom = document.getElementById("custom");
  const from = document.getElementById("from"), to = document.getElementById("to"), tenant = document.getElementById("tenant");
  if (Q.get("from")) { range.value = "custom"; custom.hidden = false; from.value = localInput(Q.get("from")); if (Q.get("to")) to.value = localInput(Q.get("to")); }
  else range.value = Q.get("since") || "24h";
  const go = (changes) => {
    const params = new URLSearchParams(location.search);
    for (const [k, v] of Object.entries(changes)) { if (v) params.set(k, v); else params.delete(k); }
    location.search = params.toString();
  };
  range.addEventListener("change", () => {
    if (range.value === "custom") { custom.hidden = false; return; }
    go({ since: range.value, from: null, to: null });
  });
  document.getElementById("controls").addEventListener("submit", (e) => {
    e.preventDefault();
    if (from.value) go({ since: null, from: new Date(from.value).toISOString(), to: to.value ? new Date(to.value).toISOString() : null });
  });
  const apiPath = PAGE === "agent" ? `/api/v1/agents/${encodeURIComponent(document.body.dataset.agent)}${location.search}`
    : PAGE === "trace" ? `/api/v1/traces/${encodeURIComponent(document.body.dataset.trace_id)}` : `/api/v1/${PAGE}${location.search}`;
  const link = document.getElementById("api-link");
  link.replaceChildren(el("a", { href: apiPath, text: apiPath }));
  try {
    const d = await api("/api/v1/tenants");
    for (const t of d.tenants) tenant.append(el("option", { value: t, text: t }));
    if (d.restricted) tenant.querySelector("option[value='']").remove();
    tenant.value = Q.get("tenant") || (d.restricted ? d.tenants[0] : "");
  } catch (error) { /* the page itself says what went wrong */ }
  tenant.addEventListener("change", () => go({ tenant: tenant.value }));
}

controls();
render();
