// The StepFlow console's graph: the DOM helper `el`, and the drawing of a graph model
// (from /console/api/graph) with dagre's layout. Loaded before console.js. Every text goes
// into the DOM through textContent or attributes, never parsed as HTML.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const MAX_DRAWN = 1000; // dagre recurses along a path: a 2,000-state chain overflows the stack
const STATUSES = ["succeeded", "failed", "caught", "running", "aborted", "timed-out", "not-run"];

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

// Draws `model` in `svg`; returns state name -> its element. `say` shows why nothing is drawn.
function drawGraph(svg, model, onPick, say) {
  while (svg.firstChild) svg.firstChild.remove();
  if (typeof dagre === "undefined" || !dagre.layout) {
    say(window.STEPFLOW_LAYOUT_MISSING ||
      "The graph layout library did not load: run `make console-assets`.");
    return new Map();
  }
  if (model.nodes.length > MAX_DRAWN) {
    say("This state machine has " + model.nodes.length + " states, more than the " +
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
    say("The graph could not be laid out (" + e.message + "); the history below is complete.");
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
