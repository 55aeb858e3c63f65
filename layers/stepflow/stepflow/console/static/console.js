// The StepFlow web console: one page over the Step Functions API on this origin
// (POST / with X-Amz-Target) and the console's graph endpoint (/console/api/graph).
// Plain browser JavaScript, no build step. Every text from the API goes into the DOM
// through textContent or attributes (never parsed as HTML), so state names and payloads cannot inject markup.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const POLL_MS = 1000;
const PAGE_SIZE = 20;
const MAX_DRAWN = 1000; // dagre recurses along a path: a 2,000-state chain overflows the stack
const STATUSES = ["succeeded", "failed", "caught", "running", "aborted", "timed-out", "not-run"];
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = tag.startsWith("svg:")
    ? document.createElementNS(SVG, tag.slice(4))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== null && v !== undefined) node.setAttribute(k, String(v));
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function banner(message) {
  const box = $("banner");
  box.textContent = message || "";
  box.hidden = !message;
}

async function sfn(action, body) {
  const reply = await fetch("/", {
    method: "POST",
    headers: {
      "Content-Type": "application/x-amz-json-1.0",
      "X-Amz-Target": "AWSStepFunctions." + action,
    },
    body: JSON.stringify(body || {}),
  });
  const text = await reply.text();
  let data = {};
  try { data = text ? JSON.parse(text) : {}; } catch (e) { data = { message: text }; }
  if (!reply.ok) {
    const kind = String(data.__type || reply.status).split("#").pop();
    throw new Error(action + ": " + kind + ": " + (data.message || data.Message || text));
  }
  return data;
}

async function graphOf(query) {
  const reply = await fetch("/console/api/graph?" + new URLSearchParams(query));
  const data = await reply.json().catch(() => ({}));
  if (!reply.ok) {
    const error = new Error("graph: " + (data.code ? data.code + ": " : "") + (data.message || reply.status));
    error.final = reply.status >= 400 && reply.status < 500; // asking again cannot help
    throw error;
  }
  return data;
}

function when(value) {
  if (value === null || value === undefined || value === "") return "";
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  return isNaN(date) ? String(value) : date.toISOString().replace("T", " ").replace("Z", "");
}

function pretty(text) {
  if (text === null || text === undefined) return "";
  try { return JSON.stringify(JSON.parse(text), null, 2); } catch (e) { return String(text); }
}

// ---------------------------------------------------------------- graph drawing

function textWidth(text, size) {
  return Math.min(360, Math.max(70, text.length * size * 0.6 + 28));
}

// The state after owner `name` once all its branches end (for layout and join edges).
function continuation(graph, name, seen) {
  if (seen.has(name)) return null;
  seen.add(name);
  const node = graph.byId.get(name);
  const next = graph.edges.find((e) => e.source === name && e.kind === "next" &&
    graph.byId.get(e.target) && graph.byId.get(e.target).group === node.group);
  if (next) return next.target;
  if (!node.end) return null;
  if (node.group === null) return "__end__";
  const group = graph.groupsById.get(node.group);
  return group ? continuation(graph, group.state, seen) : null;
}

function drawGraph(svg, model, onPick) {
  while (svg.firstChild) svg.firstChild.remove();
  if (typeof dagre === "undefined" || !dagre.layout) {
    banner(window.STEPFLOW_LAYOUT_MISSING ||
      "The graph layout library did not load: run `make console-assets`.");
    return new Map();
  }
  if (model.nodes.length > MAX_DRAWN) {
    banner("This state machine has " + model.nodes.length + " states, more than the " +
      MAX_DRAWN + " the console draws; the history below is complete.");
    return new Map();
  }
  const graph = {
    ...model,
    byId: new Map(model.nodes.map((n) => [n.id, n])),
    groupsById: new Map(model.groups.map((g) => [g.id, g])),
  };
  const g = new dagre.graphlib.Graph({ compound: true, multigraph: true });
  g.setGraph({ rankdir: "TB", nodesep: 28, ranksep: 42, edgesep: 12, marginx: 16, marginy: 16 });
  g.setDefaultEdgeLabel(() => ({}));
  const nid = (id) => "n:" + id;
  const gid = (id) => "g:" + id;
  g.setNode("n:__start__", { width: 16, height: 16, endpoint: "Start" });
  for (const group of model.groups) g.setNode(gid(group.id), { label: group.label, group });
  for (const group of model.groups) if (group.parent) g.setParent(gid(group.id), gid(group.parent));
  for (const node of model.nodes) {
    g.setNode(nid(node.id), { width: textWidth(node.name, 13), height: 40, node });
    if (node.group) g.setParent(nid(node.id), gid(node.group));
  }
  const edges = model.edges.map((e, i) => ({ ...e, key: "e" + i }));
  edges.unshift({ source: "__start__", target: model.startAt, kind: "start", label: null, key: "start" });
  let needEnd = false;
  model.nodes.forEach((node, i) => {
    if (!node.end) return;
    const target = node.group === null ? "__end__" :
      continuation(graph, graph.groupsById.get(node.group).state, new Set());
    if (target === null) return;
    needEnd = needEnd || target === "__end__";
    edges.push({ source: node.id, target, kind: node.group === null ? "end" : "join", label: null, key: "j" + i });
  });
  if (needEnd) g.setNode("n:__end__", { width: 16, height: 16, endpoint: "End" });
  for (const edge of edges) {
    const label = edge.label || "";
    g.setEdge(nid(edge.source), nid(edge.target), {
      edge, width: label ? textWidth(label, 11) - 20 : 0, height: label ? 16 : 0, labelpos: "c",
    }, edge.key);
  }
  try {
    dagre.layout(g);
  } catch (e) {
    banner("The graph could not be laid out (" + e.message + "); the history below is complete.");
    return new Map();
  }

  const layers = ["groups", "edges", "nodes"].map((name) => svg.appendChild(el("svg:g", { class: name })));
  svg.prepend(arrowDefs());
  for (const id of g.nodes()) {
    const box = g.node(id);
    if (!box.group) continue;
    const cluster = el("svg:g", { class: "group", "data-group": box.group.id, "data-kind": box.group.kind });
    cluster.append(
      el("svg:rect", { x: box.x - box.width / 2, y: box.y - box.height / 2, width: box.width, height: box.height, rx: 6 }),
      el("svg:text", { x: box.x - box.width / 2 + 6, y: box.y - box.height / 2 + 12 }, box.label),
    );
    layers[0].append(cluster);
  }
  for (const key of g.edges()) {
    const line = g.edge(key);
    const edge = line.edge;
    const points = line.points.map((p) => p.x.toFixed(1) + "," + p.y.toFixed(1));
    const path = el("svg:path", { d: "M" + points.join(" L"), "marker-end": "url(#arrow)" });
    const drawn = el("svg:g", { class: "edge " + edge.kind, "data-source": edge.source, "data-target": edge.target });
    drawn.append(path);
    if (edge.label) {
      drawn.append(
        el("svg:rect", { x: line.x - line.width / 2, y: line.y - 8, width: line.width, height: 16, rx: 3 }),
        el("svg:text", { x: line.x, y: line.y }, edge.label),
      );
      drawn.append(el("svg:title", {}, edge.kind + ": " + edge.label));
    }
    layers[1].append(drawn);
  }
  const elements = new Map();
  for (const id of g.nodes()) {
    const box = g.node(id);
    if (box.endpoint) {
      const point = el("svg:g", { class: "endpoint" }, el("svg:title", {}, box.endpoint));
      point.append(el("svg:circle", { cx: box.x, cy: box.y, r: 7 }));
      layers[2].append(point);
      continue;
    }
    if (!box.node) continue;
    const node = box.node;
    const terminal = ["Succeed", "Fail"].includes(node.type) ? " terminal" : "";
    const shape = el("svg:g", {
      class: "node" + terminal, "data-state": node.name, "data-type": node.type,
      "data-status": "not-run", tabindex: 0,
    });
    shape.append(
      el("svg:title", {}, node.type + (node.resource ? " " + node.resource : "")),
      el("svg:rect", { x: box.x - box.width / 2, y: box.y - box.height / 2, width: box.width, height: box.height }),
      el("svg:text", { x: box.x, y: box.y - 5 }, node.name),
      el("svg:text", { x: box.x, y: box.y + 11, class: "kind" }, node.type),
    );
    shape.addEventListener("click", () => onPick(node.name));
    shape.addEventListener("keydown", (e) => { if (e.key === "Enter") onPick(node.name); });
    layers[2].append(shape);
    elements.set(node.name, shape);
  }
  const size = g.graph();
  svg.setAttribute("viewBox", "0 0 " + Math.ceil(size.width) + " " + Math.ceil(size.height));
  svg.setAttribute("width", Math.ceil(size.width));
  svg.setAttribute("height", Math.ceil(size.height));
  return elements;
}

function arrowDefs() {
  const defs = el("svg:defs");
  const marker = el("svg:marker", {
    id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto",
  });
  marker.append(el("svg:path", { d: "M0,0 L10,5 L0,10 z", fill: "#687078" }));
  defs.append(marker);
  return defs;
}

function paint(elements, statuses) {
  for (const [name, shape] of elements) {
    const status = statuses[name];
    shape.setAttribute("data-status", STATUSES.includes(status) ? status : "not-run");
  }
}

// ---------------------------------------------------------------- list page

const list = { machine: null, tokens: [null], page: 0, status: "" };

async function showList(machineArn) {
  $("list-view").hidden = false;
  const params = new URLSearchParams(location.search);
  list.status = params.get("status") || "";
  $("status-filter").value = list.status;
  $("status-filter").addEventListener("change", () => {
    list.status = $("status-filter").value;
    const url = new URL(location.href);
    if (list.status) url.searchParams.set("status", list.status); else url.searchParams.delete("status");
    history.replaceState(null, "", url);
    list.tokens = [null];
    list.page = 0;
    loadExecutions().catch((e) => banner(e.message));
  });
  $("executions-next").addEventListener("click", () => { list.page += 1; loadExecutions().catch((e) => banner(e.message)); });
  $("executions-prev").addEventListener("click", () => { list.page -= 1; loadExecutions().catch((e) => banner(e.message)); });
  let token = null;
  const more = async () => {
    const page = await sfn("ListStateMachines", { maxResults: 100, ...(token ? { nextToken: token } : {}) });
    for (const machine of page.stateMachines || []) {
      const row = el("tr", { class: "pick", "data-arn": machine.stateMachineArn },
        el("td", {}, el("a", { href: "/console/state-machines/" + encodeURIComponent(machine.stateMachineArn) }, machine.name)),
        el("td", {}, machine.type || ""), el("td", {}, when(machine.creationDate)));
      if (machine.stateMachineArn === machineArn) row.classList.add("selected");
      $("machines").tBodies[0].append(row);
    }
    token = page.nextToken || null;
    $("machines-more").hidden = !token;
    return page.stateMachines || [];
  };
  $("machines-more").addEventListener("click", () => more().catch((e) => banner(e.message)));
  const first = await more();
  const chosen = machineArn || (first[0] && first[0].stateMachineArn);
  if (!chosen) return;
  list.machine = chosen;
  $("executions-section").hidden = false;
  $("machine-name").textContent = chosen.split(":").pop();
  $("crumb").textContent = chosen;
  await loadExecutions();
  if (machineArn) {
    $("machine-graph-section").hidden = false;
    const data = await graphOf({ stateMachineArn: machineArn });
    drawGraph($("machine-graph"), data.graph, () => {});
  }
}

async function loadExecutions() {
  const token = list.tokens[list.page];
  const page = await sfn("ListExecutions", {
    stateMachineArn: list.machine, maxResults: PAGE_SIZE,
    ...(list.status ? { statusFilter: list.status } : {}),
    ...(token ? { nextToken: token } : {}),
  });
  list.tokens[list.page + 1] = page.nextToken || null;
  const body = $("executions").tBodies[0];
  body.replaceChildren();
  for (const run of page.executions || []) {
    body.append(el("tr", { "data-status": run.status, "data-arn": run.executionArn },
      el("td", {}, el("a", { href: "/console/executions/" + encodeURIComponent(run.executionArn) }, run.name)),
      el("td", {}, el("span", { class: "badge " + run.status }, run.status)),
      el("td", {}, when(run.startDate)), el("td", {}, when(run.stopDate))));
  }
  $("executions-page").textContent = "Page " + (list.page + 1);
  $("executions-prev").disabled = list.page === 0;
  $("executions-next").disabled = !page.nextToken;
  banner("");
}

// ---------------------------------------------------------------- execution page

const view = { arn: null, elements: new Map(), events: -1, history: [], picked: null, timer: null };
const RUNNING = new Set(["RUNNING", "PENDING_REDRIVE"]);
const REDRIVABLE = new Set(["FAILED", "TIMED_OUT", "ABORTED"]);

async function showExecution(arn) {
  view.arn = arn;
  $("execution-view").hidden = false;
  $("crumb").textContent = arn;
  const legend = $("legend");
  for (const status of STATUSES) legend.append(el("li", { class: status }, status));
  $("stop").addEventListener("click", () => act("StopExecution", {
    executionArn: arn, error: "Console.Stopped", cause: "Stopped from the StepFlow console",
  }));
  $("redrive").addEventListener("click", () => act("RedriveExecution", { executionArn: arn }));
  await refresh();
}

async function act(action, body) {
  const verb = action === "StopExecution" ? "Stop" : "Redrive";
  if (!window.confirm(verb + " this execution?")) return;
  $("stop").disabled = true;
  $("redrive").disabled = true;
  try {
    await sfn(action, body);
    banner("");
  } catch (e) {
    banner(e.message);
  }
  await refresh();
}

async function refresh() {
  clearTimeout(view.timer);
  let running = false;
  try {
    const data = await graphOf({ executionArn: view.arn });
    if (view.elements.size === 0) {
      view.elements = drawGraph($("graph"), data.graph, pickState);
      const described = await sfn("DescribeExecution", { executionArn: view.arn });
      $("execution-input").textContent = pretty(described.input);
    }
    paint(view.elements, data.statuses);
    const run = data.execution;
    running = RUNNING.has(run.status);
    $("execution-name").textContent = run.name;
    const badge = $("execution-status");
    badge.textContent = run.status;
    badge.className = "badge " + run.status;
    $("execution-times").textContent = "Started " + when(run.startDate) +
      (run.stopDate ? ", stopped " + when(run.stopDate) : "") +
      (run.redriveCount ? ", redriven " + run.redriveCount + " time(s)" : "");
    $("execution-error").textContent = run.error ? run.error + (run.cause ? ": " + run.cause : "") : "";
    $("stop").disabled = !running;
    $("redrive").disabled = !REDRIVABLE.has(run.status);
    if (data.events !== view.events) {
      view.events = data.events;
      await loadHistory();
      if (!running) {
        const described = await sfn("DescribeExecution", { executionArn: view.arn });
        $("execution-output").textContent = pretty(described.output);
      }
    }
    document.body.dataset.executionStatus = run.status;
  } catch (e) {
    banner(e.message);
    running = !e.final; // try again unless refused: the stack may be starting or busy
  }
  if (running) view.timer = setTimeout(refresh, POLL_MS);
}

async function loadHistory() {
  const events = [];
  let token = null;
  do {
    const page = await sfn("GetExecutionHistory", {
      executionArn: view.arn, maxResults: 1000, ...(token ? { nextToken: token } : {}),
    });
    events.push(...(page.events || []));
    token = page.nextToken || null;
  } while (token && events.length < 25000);
  view.history = events;
  const body = $("events").tBodies[0];
  body.replaceChildren();
  for (const event of events) {
    const details = detailsOf(event);
    const cell = el("td", {});
    if (details.input !== undefined) cell.append(el("h3", {}, "Input"), el("pre", { class: "input" }, pretty(details.input)));
    if (details.output !== undefined) cell.append(el("h3", {}, "Output"), el("pre", { class: "output" }, pretty(details.output)));
    const rest = Object.fromEntries(Object.entries(details).filter(([k]) => !["input", "output", "name"].includes(k) && !k.endsWith("Details")));
    if (Object.keys(rest).length) cell.append(el("pre", { class: "details" }, JSON.stringify(rest, null, 2)));
    body.append(el("tr", { "data-event-type": event.type, "data-event-state": details.name || "" },
      el("td", {}, event.id), el("td", {}, when(event.timestamp)), el("td", {}, event.type),
      el("td", {}, details.name || ""), cell));
  }
  if (view.picked) pickState(view.picked);
}

function detailsOf(event) {
  const key = Object.keys(event).find((k) => k.endsWith("EventDetails"));
  return key && event[key] && typeof event[key] === "object" ? event[key] : {};
}

function pickState(name) {
  view.picked = name;
  for (const [other, shape] of view.elements) shape.classList.toggle("selected", other === name);
  let input, output;
  for (const event of view.history) {
    const details = detailsOf(event);
    if (details.name !== name) continue;
    if (event.type.endsWith("StateEntered")) input = details.input;
    if (event.type.endsWith("StateExited")) output = details.output;
  }
  $("state-detail").hidden = false;
  $("state-detail-name").textContent = name;
  $("state-input").textContent = input === undefined ? "(not entered)" : pretty(input);
  $("state-output").textContent = output === undefined ? "(not exited)" : pretty(output);
}

// ---------------------------------------------------------------- routing

function start() {
  const path = location.pathname;
  const tail = (prefix) => decodeURIComponent(path.slice(prefix.length).split("/")[0]);
  let work;
  if (path.startsWith("/console/executions/")) work = showExecution(tail("/console/executions/"));
  else if (path.startsWith("/console/state-machines/")) work = showList(tail("/console/state-machines/"));
  else work = showList(null);
  work.catch((e) => banner(e.message));
}

document.addEventListener("DOMContentLoaded", start);
