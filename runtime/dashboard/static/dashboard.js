// The dashboard's pages, drawn from /_bf/api/* and kept live by /_bf/events (no page reloads).
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const KEPT_ROWS = 500;
const state = { traces: [], flow: null, selected: null, data: null, resources: null, openapi: null, rows: {}, backlogs: {} };

function $(selector) { return document.querySelector(selector); }

function el(tag, attributes, ...children) {
  const svg = ["svg", "g", "rect", "path", "text", "polyline", "defs", "marker", "a", "title"].includes(tag) && attributes && attributes.svg;
  const node = svg ? document.createElementNS(SVG, tag) : document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (name === "svg" || value === undefined || value === null) continue;
    if (name === "onclick") node.addEventListener("click", value);
    else node.setAttribute(name, value);
  }
  for (const child of children.flat(Infinity)) {
    if (child !== undefined && child !== null) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

async function api(path) {
  const response = await fetch("/_bf/api/" + path);
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

function clip(text, size) { return text.length > size ? text.slice(0, size - 1) + "…" : text; }
function clock(seconds) { return seconds ? new Date(seconds * 1000).toLocaleTimeString() : "never"; }
function ms(value) { return value < 10 ? value.toFixed(2) + " ms" : value.toFixed(1) + " ms"; }
function hex(bytes) { return Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, "0")).join(""); }

// -- pages -------------------------------------------------------------------------------------
const pages = { flow: showFlow, requests: showRequests, api: showApi, data: showData, resources: showResources };

function route() {
  const [page, argument] = (location.hash.slice(1) || "flow").split("/");
  const name = page in pages ? page : "flow";
  for (const section of document.querySelectorAll(".page")) section.classList.toggle("shown", section.id === "page-" + name);
  for (const link of document.querySelectorAll("nav a[data-page]")) link.classList.toggle("active", link.dataset.page === name);
  pages[name](argument ? decodeURIComponent(argument) : null).catch((error) => console.error(error));
}

// -- Flow --------------------------------------------------------------------------------------
async function showFlow(selected) {
  if (!state.flow) {
    state.flow = await api("flow");
    $("#flow-name").textContent = state.flow.flow_id;
    drawFlow();
  }
  state.selected = selected;
  for (const node of document.querySelectorAll("#flow-picture .node")) node.classList.toggle("selected", node.dataset.id === selected);
  await showNode(selected);
}

function drawFlow() {
  const flow = state.flow;
  const w = flow.node_width, h = flow.node_height;
  const svg = el("svg", { svg: true, width: flow.width, height: flow.height, viewBox: `0 0 ${flow.width} ${flow.height}`, role: "img", "aria-label": "the flow" });
  svg.append(el("defs", { svg: true }, el("marker", { svg: true, id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, el("path", { svg: true, d: "M0,0 L10,5 L0,10 z" }))));
  for (const edge of flow.edges) {
    svg.append(el("path", { svg: true, class: "edge", d: edge.path, "marker-end": "url(#arrow)", "data-from": edge.from, "data-to": edge.to }));
    if (edge.label) {
      const [x, y] = edge.path.split(" ").pop().split(",").map(Number);
      svg.append(el("text", { svg: true, class: "edge-label", x: x - 6, y: y - 5, "text-anchor": "end" }, edge.label));
    }
  }
  for (const node of flow.nodes) {
    const first = clip(`${node.kind === "resource" || node.kind === "service" ? "" : node.kind + " "}${node.label}`, 26);
    svg.append(el("a", { svg: true, href: "#flow/" + encodeURIComponent(node.id) },
      el("g", { svg: true, class: `node kind-${node.kind}`, "data-id": node.id, "data-kind": node.kind, transform: `translate(${node.x},${node.y})` },
        el("rect", { svg: true, width: w, height: h, rx: 7 }),
        el("text", { svg: true, x: 10, y: 19 }, first),
        el("text", { svg: true, x: 10, y: 36, class: "sub" }, clip(node.detail, 30)),
        el("title", { svg: true }, `${node.kind}: ${node.label}\n${node.detail}`))));
  }
  $("#flow-picture").replaceChildren(svg);
}

async function showNode(id) {
  const node = state.flow.nodes.find((n) => n.id === id);
  const aside = $("#flow-details");
  if (!node) {
    aside.replaceChildren(el("p", { class: "muted" }, "Select a box to see its details."));
    return;
  }
  const byId = Object.fromEntries(state.flow.nodes.map((n) => [n.id, n]));
  const link = (other) => el("li", {}, el("a", { href: "#flow/" + encodeURIComponent(other) }, `${byId[other].kind} ${byId[other].label}`));
  const rows = Object.entries(node.info).map(([k, v]) => [el("dt", {}, k), el("dd", {}, String(v))]);
  const parts = [el("h3", {}, `${node.kind}: ${node.label}`), el("p", { class: "muted" }, node.detail), el("dl", {}, rows)];
  const into = state.flow.edges.filter((e) => e.to === id).map((e) => e.from);
  const out = state.flow.edges.filter((e) => e.from === id).map((e) => e.to);
  if (into.length) parts.push(el("h4", {}, "Used by"), el("ul", {}, into.map(link)));
  if (out.length) parts.push(el("h4", {}, "Uses"), el("ul", {}, out.map(link)));
  if (node.kind === "resource") {
    const resources = await api("resources");
    const found = resources.resources.find((r) => r.id === node.info.id);
    if (found) parts.push(el("h4", {}, "Outputs"), outputsList(found.outputs));
  }
  if (node.info.route) {
    const filtered = () => { $("#filter").value = node.info.route; };
    parts.push(el("p", {}, el("a", { href: "#requests", onclick: filtered }, "Its requests"), " · ",
      el("a", { href: "#api" }, "Call it on the API page")));
  }
  aside.replaceChildren(...parts);
}

// -- Requests ----------------------------------------------------------------------------------
async function showRequests(traceId) {
  if (!state.tracesLoaded) {
    state.traces = await api("traces");
    state.tracesLoaded = true;
  }
  renderRequests();
  if (traceId) await showTrace(traceId, $("#trace"));
  else $("#trace").replaceChildren();
}

function matches(trace) {
  const text = $("#filter").value.trim().toLowerCase();
  if ($("#errors-only").checked && !trace.error) return false;
  return !text || `${trace.name} ${trace.status} ${trace.trace_id} ${trace.kind}`.toLowerCase().includes(text);
}

function renderRequests() {
  const shown = state.traces.filter(matches);
  $("#requests").replaceChildren(...shown.map((t) => el("tr", { class: t.error ? "error" : "", "data-trace": t.trace_id },
    el("td", {}, clock(t.started_at)), el("td", {}, t.kind), el("td", {}, t.name), el("td", {}, t.status),
    el("td", {}, ms(t.duration_ms)), el("td", { class: "mono" }, el("a", { href: "#requests/" + t.trace_id }, t.trace_id)),
    el("td", { class: "mono" }, t.worker))));
  $("#request-count").textContent = `${shown.length} of ${state.traces.length}`;
}

async function showTrace(traceId, into) {
  let found = null;
  for (let attempt = 0; attempt < 25 && !found; attempt++) {  // a trace is kept once its last span ends
    const response = await fetch("/_bf/api/traces/" + traceId);
    if (response.ok) found = await response.json();
    else await new Promise((done) => setTimeout(done, 200));
  }
  if (!found) {
    into.replaceChildren(el("p", { class: "muted" }, `Trace ${traceId} is not kept (anymore).`));
    return;
  }
  into.replaceChildren(el("h3", {}, "Trace ", el("code", {}, traceId), el("span", { class: "muted" }, ` worker ${found.worker}`)),
    waterfall(found.spans));
}

function waterfall(spans) {
  const depth = {};
  const byId = Object.fromEntries(spans.map((s) => [s.span_id, s]));
  const level = (span) => depth[span.span_id] ??= span.parent_id && byId[span.parent_id] ? level(byId[span.parent_id]) + 1 : 0;
  const total = Math.max(...spans.map((s) => s.start_ms + s.duration_ms), 0.001);
  const ordered = [...spans].sort((a, b) => a.start_ms - b.start_ms || level(a) - level(b));
  return el("div", { class: "waterfall" }, ordered.map((span) => {
    const attributes = Object.entries(span.attributes).map(([k, v]) => `${k}=${v}`).join("  ");
    return el("div", { class: "span" + (span.error ? " error" : ""), "data-name": span.name },
      el("span", { class: "name", style: `padding-left:${level(span) * 14}px` }, span.name),
      el("span", { class: "track" }, el("span", { class: "bar", style: `left:${(span.start_ms / total) * 100}%;width:${(span.duration_ms / total) * 100}%` })),
      el("span", { class: "mono" }, ms(span.duration_ms)),
      (attributes || span.error) ? el("div", { class: "attributes mono" }, span.error ? `error: ${span.error}  ` : "", attributes) : null,
      ...(span.events || []).map(spanEvent));
  }));
}

// an event the flow added to a span (OpenTelemetry's add_event, record_exception): when, what,
// its attributes; a recorded exception's stack trace folded under it
function spanEvent(event) {
  const { "exception.stacktrace": stack, ...rest } = event.attributes;
  const attributes = Object.entries(rest).map(([k, v]) => `${k}=${v}`).join("  ");
  return el("div", { class: "event attributes mono", "data-event": event.name },
    `@ ${ms(event.at_ms)} ${event.name}  ${attributes}`,
    stack ? el("details", {}, el("summary", {}, "stack trace"), el("pre", {}, stack)) : null);
}

// -- API ---------------------------------------------------------------------------------------
async function showApi() {
  if (state.openapi) return;
  const response = await fetch("/openapi.json");
  if (!response.ok) {
    $("#operations").replaceChildren(el("p", { class: "muted" }, "The flow serves its own /openapi.json route: no API description to show."));
    return;
  }
  state.openapi = await response.json();
  const operations = [];
  for (const [path, methods] of Object.entries(state.openapi.paths || {})) {
    for (const [method, operation] of Object.entries(methods)) operations.push(operationCard(path, method.toUpperCase(), operation));
  }
  $("#operations").replaceChildren(...operations);
}

function resolve(schema) {
  const ref = schema && schema.$ref;
  return ref ? resolve(ref.split("/").slice(1).reduce((at, key) => at[key], state.openapi)) : schema;
}

function example(schema, depth = 0) {
  schema = resolve(schema) || {};
  if (schema.example !== undefined) return schema.example;
  if (depth > 4) return null;
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== "null") : schema.type;
  if (schema.anyOf) return example(schema.anyOf.find((s) => s.type !== "null"), depth + 1);
  if (type === "object") return Object.fromEntries(Object.entries(schema.properties || {}).map(([k, v]) => [k, example(v, depth + 1)]));
  if (type === "array") return [example(schema.items, depth + 1)];
  return { integer: 0, number: 0, boolean: false, string: "" }[type] ?? null;
}

function operationCard(path, method, operation) {
  const parameters = (operation.parameters || []).filter((p) => p.in === "path" || p.in === "query");
  const body = operation.requestBody && operation.requestBody.content && operation.requestBody.content["application/json"];
  const inputs = parameters.map((p) => el("label", {}, `${p.name} (${p.in}${p.required ? ", required" : ""}) `,
    el("input", { "data-param": p.name, "data-in": p.in, placeholder: (resolve(p.schema) || {}).type || "" })));
  const text = body ? el("textarea", { "data-body": "" }, JSON.stringify(example(body.schema), null, 2)) : null;
  const result = el("div", { class: "result" });
  const send = el("button", { type: "button", onclick: () => callOperation(path, method, inputs, text, result) }, "Send");
  const responses = Object.entries(operation.responses || {}).map(([code, r]) => el("li", {}, `${code}: ${r.description || ""}`));
  return el("details", { class: "operation", "data-operation": `${method} ${path}` },
    el("summary", {}, el("span", { class: "method" }, method), el("code", {}, path), " ", el("span", { class: "muted" }, operation.summary || "")),
    el("div", { class: "body" },
      operation.description ? el("p", {}, operation.description) : null,
      parameters.length ? el("h4", {}, "Parameters") : null, inputs,
      body ? [el("h4", {}, "Body (JSON)"), el("pre", { class: "mono muted" }, JSON.stringify(resolve(body.schema), null, 1)), text] : null,
      el("h4", {}, "Responses"), el("ul", {}, responses), send, result));
}

async function callOperation(path, method, inputs, text, result) {
  let url = path;
  const query = new URLSearchParams();
  for (const label of inputs) {
    const input = label.querySelector("input");
    if (input.dataset.in === "path") url = url.replace(`{${input.dataset.param}}`, encodeURIComponent(input.value));
    else if (input.value !== "") query.append(input.dataset.param, input.value);
  }
  if ([...query].length) url += "?" + query;
  const traceId = hex(16);
  const headers = { traceparent: `00-${traceId}-${hex(8)}-01` };
  if (text) headers["Content-Type"] = "application/json";
  result.replaceChildren(el("p", { class: "muted" }, `${method} ${url}…`));
  const response = await fetch(url, { method, headers, body: text ? text.value : undefined });
  const answer = await response.text();
  const trace = el("div", { class: "call-trace" });
  result.replaceChildren(
    el("p", {}, el("strong", { class: "status" }, `${response.status} ${response.statusText}`), " ",
      el("a", { href: "#requests/" + traceId }, "open in Requests")),
    el("pre", { class: "mono response" }, answer), trace);
  await showTrace(traceId, trace);
}

// -- Data --------------------------------------------------------------------------------------
async function showData() {
  if (!state.data) state.data = await api("data");
  renderData();
}

function sparkline(values) {
  const top = Math.max(...values, 1);
  const points = values.map((v, i) => `${(i / (values.length - 1)) * 300},${40 - (v / top) * 38}`).join(" ");
  return el("svg", { svg: true, class: "spark", width: 300, height: 42, viewBox: "0 0 300 42" }, el("polyline", { svg: true, points }));
}

function renderData() {
  const data = state.data;
  if (!data) return;
  $("#workers").textContent = data.workers ? `(summed over ${data.workers} workers)` : "";
  $("#sinks").replaceChildren(...(data.sinks.length ? data.sinks.map((s) => {
    const rate = s.rows_per_second[s.rows_per_second.length - 1] || 0;
    const errors = Object.entries(s.write_errors).filter(([, n]) => n).map(([k, n]) => `${n} ${k}`).join(", ");
    return el("div", { class: "card", "data-sink": s.id },
      el("h3", {}, s.description || s.id),
      sparkline(s.rows_per_second),
      el("p", {}, `${rate.toFixed(1)} rows/s · `, el("span", { class: "rows-written" }, s.rows_written), ` rows in ${s.batches_written} writes · ${s.queued} queued`),
      el("p", {}, `last write: ${clock(s.last_write)}`),
      errors ? el("p", { class: "error" }, `failed writes: ${errors}; last ${s.last_error ? s.last_error.reason + " at " + clock(s.last_error.time) : "before this page opened"}`) : el("p", { class: "muted" }, "no failed writes"),
      latestRows(s));
  }) : [el("p", { class: "muted" }, "No sink has been written to by this worker yet.")]));
  const backlog = (c, key) => {
    const counts = state.backlogs[c.name];
    return counts ? (counts[key] ?? "no dead-letter topic") : el("span", { class: "muted", title: "only local topic logs report it" }, "n/a");
  };
  $("#consumers").replaceChildren(...data.consumers.map((c) => el("tr", { class: c.failed ? "error" : "" },
    el("td", {}, c.name), el("td", {}, c.source), el("td", {}, c.handled), el("td", {}, c.failed), el("td", {}, c.given_up),
    el("td", { class: "waiting" }, backlog(c, "waiting")), el("td", { class: "dead-lettered" }, backlog(c, "dead_lettered")))));
  if (data.consumers.length && !state.countingBacklogs && $("#page-data").classList.contains("shown")) {
    state.countingBacklogs = true;  // one count at a time: each reads the subscriptions' files
    api("backlogs").then((counts) => { state.backlogs = counts; }).finally(() => { state.countingBacklogs = false; });
  }
}

function latestRows(sink) {
  const kept = state.rows[sink.id] ??= { written: -1, shown: el("div", { class: "rows" }) };
  if (kept.written !== sink.rows_written && $("#page-data").classList.contains("shown")) {
    kept.written = sink.rows_written;
    fetch("/_bf/api/rows?sink=" + encodeURIComponent(sink.id)).then(async (response) => {
      if (response.status === 404) return kept.shown.replaceChildren();
      const found = await response.json();
      if (!response.ok) return kept.shown.replaceChildren(el("p", { class: "error" }, found.detail));
      kept.shown.replaceChildren(el("h4", {}, "Latest rows"), el("table", { class: "list rows-table" },
        el("thead", {}, el("tr", {}, found.columns.map((c) => el("th", {}, c)))),
        el("tbody", {}, found.rows.map((row) => el("tr", {}, row.map((v) => el("td", { class: "mono" }, typeof v === "object" && v !== null ? JSON.stringify(v) : String(v))))))));
    });
  }
  return kept.shown;
}

// -- Resources and logs ------------------------------------------------------------------------
function outputsList(outputs) {
  return el("dl", {}, Object.entries(outputs).map(([k, v]) => [el("dt", {}, k), el("dd", { class: "mono" }, typeof v === "object" ? JSON.stringify(v) : String(v))]));
}

async function showResources() {
  state.resources = await api("resources");
  $("#target").textContent = `(${state.resources.target} target)`;
  $("#resources").replaceChildren(...state.resources.resources.map((r) => el("tr", {},
    el("td", { class: "mono" }, r.id), el("td", {}, r.type), el("td", {}, r.applied ? "yes" : "no"), el("td", {}, outputsList(r.outputs)))));
  if (!state.logsLoaded) {
    for (const line of await api("logs")) addLog(line);
    state.logsLoaded = true;
  }
}

function addLog(line) {
  const logs = $("#logs");
  logs.append(el("div", { class: line.level }, `${clock(line.time)} ${line.level} [${line.worker}] ${line.logger}: ${line.message}`));
  while (logs.childElementCount > KEPT_ROWS) logs.firstElementChild.remove();
  logs.scrollTop = logs.scrollHeight;
}

// -- live --------------------------------------------------------------------------------------
function listen() {
  const events = new EventSource("/_bf/events");
  const live = $("#live");
  events.onopen = () => { live.textContent = "live"; live.classList.add("on"); };
  events.onerror = () => { live.textContent = "reconnecting"; live.classList.remove("on"); };
  events.addEventListener("traces", (event) => {
    state.traces.unshift(...JSON.parse(event.data).reverse());
    state.traces.length = Math.min(state.traces.length, KEPT_ROWS);
    if (state.tracesLoaded) renderRequests();
  });
  events.addEventListener("logs", (event) => { if (state.logsLoaded) JSON.parse(event.data).forEach(addLog); });
  events.addEventListener("data", (event) => { state.data = JSON.parse(event.data); renderData(); });
}

$("#filter").addEventListener("input", renderRequests);
$("#errors-only").addEventListener("change", renderRequests);
window.addEventListener("hashchange", route);
listen();
route();
