// The StepFlow web console: one page over the Step Functions API on this origin
// (POST / with X-Amz-Target). Everything it shows is read there, so the API's access
// policy decides what the page may see; /console/api/graph only computes the graph and
// the states' statuses from the definition and events the page sends (graph.js draws).
// Plain browser JavaScript, no build step; texts go into the DOM as text, never as HTML.
"use strict";

const POLL_MS = 1000;
const PAGE_SIZE = 20;
const MAX_EVENTS = 150000; // what /console/api/graph takes in one request
const $ = (id) => document.getElementById(id);

// A message, or with none the standing one (what the page cannot show stays said).
function banner(message) {
  const box = $("banner");
  box.textContent = message || banner.standing;
  box.hidden = !box.textContent;
}
banner.standing = "";

function standing(message) {
  banner.standing = message;
  banner(message);
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

// The graph model and each state's status, computed from what the page itself read.
async function graphOf(definition, events) {
  const reply = await fetch("/console/api/graph", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(events ? { definition, events } : { definition }),
  });
  const data = await reply.json().catch(() => ({}));
  if (!reply.ok) {
    const error = new Error("graph: " + (data.message || reply.status));
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

function paint(elements, statuses) {
  for (const [name, shape] of elements) {
    const status = statuses[name];
    shape.setAttribute("data-status", STATUSES.includes(status) ? status : "not-run");
  }
}

// ---------------------------------------------------------------- list page

const list = { machine: null, tokens: [null], page: 0, hasNext: false, status: "", load: 0 };
const PAGER = ["executions-prev", "executions-next", "status-filter"];

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
    loadExecutions(0);
  });
  $("executions-next").addEventListener("click", () => loadExecutions(list.page + 1));
  $("executions-prev").addEventListener("click", () => loadExecutions(list.page - 1));
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
  await loadExecutions(0);
  if (machineArn) {
    $("machine-graph-section").hidden = false;
    const described = await sfn("DescribeStateMachine", { stateMachineArn: machineArn });
    const data = await graphOf(described.definition);
    drawGraph($("machine-graph"), data.graph, () => {}, standing);
  }
}

// Loads page `index` of the executions. The pager is disabled while a load runs and
// only the latest load's answer is shown (a filter change may overtake a page turn).
async function loadExecutions(index) {
  const tag = ++list.load;
  for (const id of PAGER) $(id).disabled = true;
  const token = list.tokens[index];
  let page;
  try {
    page = await sfn("ListExecutions", {
      stateMachineArn: list.machine, maxResults: PAGE_SIZE,
      ...(list.status ? { statusFilter: list.status } : {}),
      ...(token ? { nextToken: token } : {}),
    });
  } catch (e) {
    if (tag === list.load) { banner(e.message); enablePager(); }
    return;
  }
  if (tag !== list.load) return; // a later load owns the table
  list.page = index;
  list.tokens[index + 1] = page.nextToken || null;
  list.hasNext = Boolean(page.nextToken);
  const body = $("executions").tBodies[0];
  body.replaceChildren();
  for (const run of page.executions || []) {
    body.append(el("tr", { "data-status": run.status, "data-arn": run.executionArn },
      el("td", {}, el("a", { href: "/console/executions/" + encodeURIComponent(run.executionArn) }, run.name)),
      el("td", {}, el("span", { class: "badge " + run.status }, run.status)),
      el("td", {}, when(run.startDate)), el("td", {}, when(run.stopDate))));
  }
  $("executions-page").textContent = "Page " + (list.page + 1);
  enablePager();
  banner("");
}

function enablePager() {
  $("executions-prev").disabled = list.page === 0;
  $("executions-next").disabled = !list.hasNext;
  $("status-filter").disabled = false;
}

// ---------------------------------------------------------------- execution page

const view = {
  arn: null, definition: null, elements: new Map(), drawn: false, history: [], bare: [],
  lastId: 0, truncated: false, picked: null, timer: null, busy: false, again: false,
};
const RUNNING = new Set(["RUNNING", "PENDING_REDRIVE"]);

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

// One poll: the execution, the events newer than the page's, the statuses if they changed.
// One poll runs at a time; a call during a poll makes it poll once more when done.
async function refresh() {
  if (view.busy) { view.again = true; return; }
  view.busy = true;
  clearTimeout(view.timer);
  let running = false;
  try {
    const run = await sfn("DescribeExecution", { executionArn: view.arn });
    running = RUNNING.has(run.status);
    if (view.definition === null) {
      const machine = await sfn("DescribeStateMachineForExecution", { executionArn: view.arn });
      view.definition = machine.definition;
      $("execution-input").textContent = pretty(run.input);
    }
    const fresh = await newEvents();
    if (fresh.length) addEvents(fresh);
    if (!view.drawn || fresh.length) {
      const data = await graphOf(view.definition, view.bare);
      if (!view.drawn) {
        view.elements = drawGraph($("graph"), data.graph, pickState, standing);
        view.drawn = true;
      }
      paint(view.elements, data.statuses);
    }
    if (view.truncated) {
      standing("The history has more than " + MAX_EVENTS + " events: the page shows and colours the first " +
        MAX_EVENTS + " only (stepflow graph --execution reads them all).");
    }
    showRun(run, running);
  } catch (e) {
    banner(e.message);
    running = !e.final; // try again unless refused: the stack may be starting or busy
  } finally {
    view.busy = false;
  }
  if (view.again) {
    view.again = false;
    return refresh();
  }
  if (running) view.timer = setTimeout(refresh, POLL_MS);
}

function showRun(run, running) {
  $("execution-name").textContent = run.name;
  const badge = $("execution-status");
  badge.textContent = run.status;
  badge.className = "badge " + run.status;
  $("execution-times").textContent = "Started " + when(run.startDate) +
    (run.stopDate ? ", stopped " + when(run.stopDate) : "") +
    (run.redriveCount ? ", redriven " + run.redriveCount + " time(s)" : "");
  $("execution-error").textContent = run.error ? run.error + (run.cause ? ": " + run.cause : "") : "";
  $("execution-output").textContent = running ? "" : pretty(run.output);
  $("stop").disabled = !running;
  const redrivable = run.redriveStatus === "REDRIVABLE";
  $("redrive").disabled = !redrivable;
  $("redrive-reason").textContent = redrivable || running ? "" : run.redriveStatusReason || "";
  document.body.dataset.executionStatus = run.status;
}

// The events after the newest the page holds: from the start on the first call (up to
// MAX_EVENTS), then newest first back to a known id (a poll reads only what is new; the
// oldest of them are kept, so the page's history stays a prefix of the real one).
async function newEvents() {
  if (view.truncated) return [];
  const forward = view.lastId === 0;
  const found = [];
  const seen = new Set();
  let token = null;
  scan: do {
    const page = await sfn("GetExecutionHistory", {
      executionArn: view.arn, maxResults: forward ? 1000 : 200,
      ...(forward ? {} : { reverseOrder: true }), ...(token ? { nextToken: token } : {}),
    });
    for (const event of page.events || []) {
      if (!forward && event.id <= view.lastId) break scan;
      found.push(event);
    }
    token = page.nextToken || null;
    if (token && seen.has(token)) throw new Error("GetExecutionHistory repeated a nextToken");
    if (token) seen.add(token);
  } while (token && (!forward || found.length < MAX_EVENTS));
  if (!forward) found.reverse();
  if (view.history.length + found.length > MAX_EVENTS || (forward && token)) view.truncated = true;
  return found.slice(0, Math.max(0, MAX_EVENTS - view.history.length));
}

// What the statuses need of an event (not its inputs and outputs).
function bare(event) {
  const kept = { id: event.id, type: event.type, previousEventId: event.previousEventId };
  for (const key of ["stateEnteredEventDetails", "stateExitedEventDetails"]) {
    if (event[key]) kept[key] = { name: event[key].name };
  }
  return kept;
}

function addEvents(events) {
  view.history.push(...events);
  view.bare.push(...events.map(bare));
  view.lastId = events[events.length - 1].id;
  const body = $("events").tBodies[0];
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
