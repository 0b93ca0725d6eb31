// The store dashboard: the report table, totals, pipeline and chart, kept up to date by
// the live stream (GET /events/report: `report` and `processors` messages).
//
//   token (#token=… or the form) ─► sessionStorage ─► LiveStream ─┬─ report ─► table, totals
//                                                                  ├─ processors ─► pipeline, workers, chart
//                                                                  └─ sales ─► takings today, hourly chart
// Every piece of server data reaches the page through textContent, never as markup.

import { ThroughputChart } from "./chart.js";
import { ago, clock, count, decimal, duration, money, position } from "./format.js";
import { HourlyChart, hourLabel } from "./hours.js";
import { LiveStream } from "./stream.js";

const TOKEN_KEY = "tillflow.token";
const STREAM_URL = new URL("../events/report", window.location.href).toString();

const $ = (selector) => document.querySelector(selector);

const STATE_LABELS = {
  idle: "caught up",
  running: "catching up",
  waiting: "waiting",
  retrying: "retrying",
  failed: "failed",
  stopped: "stopped",
  starting: "starting",
  elsewhere: "in a worker",
  stalled: "stalled",
};

const MOVING = new Set(["running", "idle", "waiting", "starting"]); // states not stuck

const view = {
  rows: new Map(), // product_id → row as sent
  rowElements: new Map(), // product_id → {tr, cells}
  totals: null,
  freshness: null,
  lanes: 1,
  processorElements: new Map(), // "name/lane" → {li, fields}
  workerElements: new Map(), // worker id → {li, expiry, groups, shown}
  sort: { key: "name", direction: 1 },
  clockOffset: 0, // server clock − this browser's clock, ms (only when clearly off)
  stream: null,
  live: false,
};

const chart = new ThroughputChart($("#chart"));
const hoursChart = new HourlyChart($("#hours"));

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function serverNow() {
  return (Date.now() + view.clockOffset) / 1000;
}

/** "3 s ago" for a commit time in Unix seconds; "—" when there is none yet. */
function since(at) {
  return at > 0 ? ago(serverNow() - at) : "—";
}

// -- the report table ------------------------------------------------------------------

const COLUMNS = [
  { key: "name", className: "text product" },
  { key: "price", text: (r) => money(r.price) },
  { key: "received", text: (r) => count(r.received) },
  { key: "units_sold", text: (r) => count(r.units_sold) },
  { key: "units_returned", text: (r) => count(r.units_returned) },
  { key: "revenue", text: (r) => money(r.revenue) },
  { key: "stock_left", text: (r) => count(r.stock_left) },
  {
    key: "open_shortfall",
    text: (r) => (r.open_shortfall > 0 ? count(r.open_shortfall) : "—"),
  },
  {
    key: "as_of",
    className: "text as-of",
    text: (r) => `v${r.as_of.version} · ${position(r.as_of.lane, r.as_of.position, view.lanes)}`,
  },
  { key: "changed", className: "text changed", text: (r) => since(r.as_of.at) },
];

function stockTitle(row) {
  if (!row.reorder_point) return "no reorder point";
  const since = row.low_since;
  if (!row.low || !since) return `reorder point ${count(row.reorder_point)}`;
  const where = position(since.lane, since.position, view.lanes);
  return (
    `below its reorder point ${count(row.reorder_point)} since ${clock(since.at)} ` +
    `(v${since.version} · ${where})`
  );
}

function sortValue(row, key) {
  switch (key) {
    case "name":
      return row.name.toLocaleLowerCase();
    case "position":
      return row.as_of.position;
    case "at":
      return row.as_of.at;
    default:
      return row[key];
  }
}

function compareRows(a, b) {
  const { key, direction } = view.sort;
  const left = sortValue(a, key);
  const right = sortValue(b, key);
  const order = typeof left === "string" ? left.localeCompare(right) : left - right;
  return order * direction || a.product_id.localeCompare(b.product_id);
}

function makeRow(productId) {
  const tr = element("tr");
  tr.dataset.product = productId;
  tr.addEventListener("animationend", () => tr.classList.remove("flash"));
  const cells = {};
  for (const column of COLUMNS) {
    const td = element("td", column.className);
    td.dataset.field = column.key;
    if (column.key === "name") {
      td.append(element("span", "product-name"), element("span", "product-id"));
    } else if (column.key === "open_shortfall") {
      td.append(element("span", "badge"));
    }
    cells[column.key] = td;
    tr.append(td);
  }
  return { tr, cells };
}

function fillRow(entry, row) {
  const { tr, cells } = entry;
  const [name, id] = cells.name.children;
  setText(name, row.name);
  const incomplete = row.incomplete_since ? ` · incomplete since ${clock(row.incomplete_since)}` : "";
  setText(id, `${row.discontinued ? `${row.product_id} · discontinued` : row.product_id}${incomplete}`);
  tr.classList.toggle("incomplete", Boolean(incomplete));
  for (const column of COLUMNS) {
    if (column.text) setText(cells[column.key].firstElementChild || cells[column.key], column.text(row));
  }
  tr.classList.toggle("short", row.open_shortfall > 0);
  tr.classList.toggle("low", row.low);
  tr.classList.toggle("discontinued", row.discontinued);
  cells.stock_left.classList.toggle("negative", row.stock_left < 0);
  cells.stock_left.title = stockTitle(row);
  const at = clock(row.as_of.at);
  cells.as_of.title =
    `Every figure in this row is Inventory's version ${row.as_of.version} of ` +
    `${row.product_id}, at position ${row.as_of.position} of lane ${row.as_of.lane}, ` +
    `committed at ${at}.`;
  cells.changed.title = `committed at ${at}`;
}

function flash(tr) {
  tr.classList.remove("flash");
  void tr.offsetWidth; // restart the animation
  tr.classList.add("flash");
}

function renderRows(changed, full) {
  const body = $("#report tbody");
  if (full) {
    const present = new Set(changed.map((row) => row.product_id));
    for (const [productId, entry] of view.rowElements) {
      if (!present.has(productId)) {
        entry.tr.remove();
        view.rowElements.delete(productId);
        view.rows.delete(productId);
      }
    }
  }
  for (const row of changed) {
    const before = view.rows.get(row.product_id);
    view.rows.set(row.product_id, row);
    let entry = view.rowElements.get(row.product_id);
    if (!entry) {
      entry = makeRow(row.product_id);
      view.rowElements.set(row.product_id, entry);
    }
    fillRow(entry, row);
    if (before && JSON.stringify(before) !== JSON.stringify(row)) flash(entry.tr);
  }
  const ordered = [...view.rows.values()].sort(compareRows);
  const current = [...body.children].map((tr) => tr.dataset.product);
  if (ordered.some((row, i) => row.product_id !== current[i]) || current.length !== ordered.length) {
    for (const row of ordered) body.append(view.rowElements.get(row.product_id).tr);
  }
  $("#report-empty").hidden = view.rows.size > 0;
}

function renderSortMarks() {
  for (const th of document.querySelectorAll("#report th[data-sort]")) {
    const active = th.dataset.sort === view.sort.key;
    th.classList.toggle("sorted", active);
    th.setAttribute(
      "aria-sort",
      active ? (view.sort.direction > 0 ? "ascending" : "descending") : "none",
    );
  }
}

// -- totals and freshness --------------------------------------------------------------

function renderTotals() {
  const totals = view.totals;
  if (!totals) return;
  const field = (name) => document.querySelector(`[data-total="${name}"]`);
  setText(field("revenue"), money(totals.revenue));
  setText(field("tax"), money(totals.tax));
  const rate = (entry) => `${entry.rate || "before VAT"} ${entry.basis_points / 100} %`;
  const taxed = totals.by_rate.filter((entry) => entry.revenue !== 0 || entry.tax !== 0);
  setText(field("tax_by_rate"), taxed.map((e) => `${rate(e)}: ${money(e.tax)}`).join(" · "));
  field("tax_by_rate").title = taxed
    .map((e) => `${rate(e)}: net ${money(e.net)} + VAT ${money(e.tax)} = ${money(e.revenue)}`)
    .join("\n");
  setText(field("checkouts"), count(totals.checkouts));
  setText(field("units_sold"), count(totals.units_sold));
  setText(field("returns"), count(totals.returns));
  setText(field("units_returned"), count(totals.units_returned));
  let shortProducts = 0;
  let shortUnits = 0;
  for (const row of view.rows.values()) {
    if (row.open_shortfall > 0) {
      shortProducts += 1;
      shortUnits += row.open_shortfall;
    }
  }
  setText(field("short_products"), count(shortProducts));
  setText(field("short_units"), count(shortUnits));
  $("#kpi-short").classList.toggle("alert", shortProducts > 0);
  const low = [...view.rows.values()].filter((row) => row.low).sort(compareRows);
  setText(field("low_products"), count(low.length));
  const names = low.map((row) => row.name || row.product_id);
  const more = names.length > 2 ? ` +${names.length - 2}` : "";
  setText(field("low_names"), names.slice(0, 2).join(", ") + more);
  field("low_names").title = names.join(", ");
  $("#kpi-low").classList.toggle("warn", low.length > 0);
  setText(field("as_of"), position(totals.as_of.lane, totals.as_of.position, view.lanes));
  field("as_of").title = `the totals include every event up to position ${totals.as_of.position}`;
  renderAges();
}

function renderFreshness() {
  const freshness = view.freshness;
  if (!freshness) return;
  const node = $("#freshness");
  const checkpoints = Object.entries(freshness.checkpoint)
    .map(([lane, at]) => position(Number(lane), at, view.lanes))
    .join(", ");
  const behind = freshness.lag_events > 0;
  if (!view.live) {
    node.dataset.lag = "unknown";
    setText(node, `Last seen: report as of ${checkpoints} · not live now`);
    return;
  }
  node.dataset.lag = behind ? "behind" : "fresh";
  setText(
    node,
    behind
      ? `Report as of ${checkpoints} · ${count(freshness.lag_events)} events ` +
          `(${duration(freshness.lag_seconds)}) behind the log`
      : `Report as of ${checkpoints} · up to date with the log`,
  );
}

function renderAges() {
  if (view.totals) {
    const totalsAt = document.querySelector('[data-total="as_of_at"]');
    const at = view.totals.as_of.at;
    setText(totalsAt, at > 0 ? `${clock(at)} · ${since(at)}` : "no sale yet");
  }
  for (const [productId, entry] of view.rowElements) {
    const row = view.rows.get(productId);
    setText(entry.cells.changed, since(row.as_of.at));
  }
}

function onReport(message) {
  view.lanes = Math.max(1, Object.keys(message.freshness.head).length);
  renderRows(message.rows, message.full);
  view.totals = message.totals;
  view.freshness = message.freshness;
  renderTotals();
  renderFreshness();
  $("#board").hidden = false;
}

// -- the pipeline and the chart ---------------------------------------------------------

function makeProcessor(statistics) {
  const li = element("li", "processor");
  li.dataset.processor = statistics.processor;
  li.dataset.lane = String(statistics.lane);
  const head = element("div", "proc-head");
  const name = element("span", "proc-name", statistics.processor);
  const lane = element("span", "proc-lane");
  const pill = element("span", "state-pill");
  head.append(name, lane, pill);
  const bar = element("div", "bar");
  const fill = element("div", "fill");
  bar.append(fill);
  const fields = { pill, lane, fill };
  const line = (...parts) => {
    const row = element("div", "proc-figures");
    for (const part of parts) {
      if (typeof part === "string") {
        row.append(part);
        continue;
      }
      const [key, className] = part;
      const span = element("span", className || "figure");
      span.dataset.field = key;
      fields[key] = span;
      row.append(span);
    }
    return row;
  };
  const progress = line("checkpoint ", ["checkpoint"], " of head ", ["head"], ["throughput", "rate"]);
  const lag = line("lag ", ["lag_events"], " events · ", ["lag_seconds"]);
  const barrier = element("div", "proc-barrier");
  barrier.dataset.field = "barrier";
  const owner = element("div", "proc-owner");
  owner.dataset.field = "owner";
  const error = element("div", "proc-error");
  error.dataset.field = "error";
  const parked = element("div", "proc-parked");
  parked.dataset.field = "parked";
  fields.barrier = barrier;
  fields.owner = owner;
  fields.error = error;
  fields.parked = parked;
  li.append(head, bar, progress, lag, barrier, owner, error, parked);
  return { li, fields };
}

/** Whether a live lease holds this lane of this processor (PostgreSQL). */
function held(statistics) {
  return Boolean(statistics.owner) && statistics.lease_expires_in > 0;
}

/** Who runs this lane of this processor: its lease's holder (PostgreSQL), or nobody. */
function ownerText(statistics) {
  const refused = statistics.fenced_commits;
  const batches = refused === 1 ? "batch" : "batches";
  const fenced = refused ? ` · ${count(refused)} fenced ${batches}` : "";
  if (held(statistics)) {
    return `held by ${statistics.owner} · epoch ${count(statistics.epoch)}${fenced}`;
  }
  return `no worker holds this lane${fenced}`;
}

/** Keys parked on this lane (dead letters), or "" when none. */
function parkedText(statistics) {
  const keys = statistics.parked_keys || 0;
  if (!keys) return "";
  const events = statistics.parked_events;
  const held = `${count(events)} ${events === 1 ? "event" : "events"} held`;
  const oldest = since(statistics.oldest_parked_at);
  return `${count(keys)} ${keys === 1 ? "key" : "keys"} parked · ${held} · oldest ${oldest}`;
}

/** The state pill: a stalled lane says how long it has been behind without moving. */
function pillText(statistics) {
  if (statistics.state === "stalled") return `stalled · ${duration(statistics.stalled_seconds)}`;
  if (statistics.state === "waiting" && statistics.waiting_on) {
    return `waiting on ${statistics.waiting_on}`;
  }
  return STATE_LABELS[statistics.state] || statistics.state;
}

/** `states`: "name/lane" → state, to say when the upstream waited on is stuck itself. */
function barrierText(statistics, states) {
  const after = statistics.after && statistics.after.length ? statistics.after.join(", ") : null;
  if (statistics.waiting_on) {
    const upstream = states.get(`${statistics.waiting_on}/${statistics.lane}`);
    const waited = `held at the barrier: waiting for ${statistics.waiting_on}`;
    if (!upstream || MOVING.has(upstream)) return waited;
    return `${waited}, which is ${STATE_LABELS[upstream] || upstream}`;
  }
  if (after) return `barrier: never ahead of ${after}`;
  return "no barrier: reads up to the head";
}

function renderProcessors(message) {
  const list = $("#pipeline");
  const seen = new Set();
  const lanes = new Set(message.processors.map((s) => s.lane));
  const states = new Map(message.processors.map((s) => [`${s.processor}/${s.lane}`, s.state]));
  for (const statistics of message.processors) {
    const key = `${statistics.processor}/${statistics.lane}`;
    seen.add(key);
    let entry = view.processorElements.get(key);
    if (!entry) {
      entry = makeProcessor(statistics);
      view.processorElements.set(key, entry);
    }
    list.append(entry.li); // keeps the server's (dependency) order
    const { li, fields } = entry;
    li.dataset.state = statistics.state;
    setText(fields.pill, pillText(statistics));
    setText(fields.lane, lanes.size > 1 ? `lane ${statistics.lane}` : "");
    setText(fields.checkpoint, count(statistics.checkpoint));
    setText(fields.head, count(statistics.head));
    setText(fields.lag_events, count(statistics.lag_events));
    setText(fields.lag_seconds, duration(statistics.lag_seconds));
    setText(fields.throughput, `${decimal(statistics.throughput)} ev/s`);
    setText(fields.barrier, barrierText(statistics, states));
    const stuckAtBarrier = statistics.state === "stalled" && Boolean(statistics.waiting_on);
    fields.barrier.classList.toggle("alarm", stuckAtBarrier);
    fields.owner.hidden = !message.leased;
    if (message.leased) {
      setText(fields.owner, ownerText(statistics));
      fields.owner.classList.toggle("orphaned", !held(statistics));
    }
    const share = statistics.head > 0 ? statistics.checkpoint / statistics.head : 1;
    fields.fill.style.width = `${(share * 100).toFixed(2)}%`;
    li.classList.toggle("lagging", statistics.lag_events > 0);
    const problem = statistics.error
      ? `${statistics.error}${statistics.failed_event ? ` — at ${statistics.failed_event}` : ""}`
      : "";
    setText(fields.error, problem);
    fields.error.hidden = !problem;
    const parked = parkedText(statistics);
    setText(fields.parked, parked);
    fields.parked.hidden = !parked;
    li.classList.toggle("parked", Boolean(parked));
  }
  for (const [key, entry] of view.processorElements) {
    if (!seen.has(key)) {
      entry.li.remove();
      view.processorElements.delete(key);
    }
  }
  const behind = message.processors.filter((s) => s.lag_events > 0).length;
  const stalled = message.processors.filter((s) => s.state === "stalled").length;
  const note = $("#pipeline-note");
  const moving = behind
    ? `${behind} behind the head of the log`
    : "every processor caught up with the log";
  const threshold = duration(message.stall_after);
  setText(note, stalled ? `${stalled} stalled: no progress for ${threshold} · ${moving}` : moving);
  note.classList.toggle("alarm", stalled > 0);
  renderWorkers(message);
  sampleChart(message);
}

// -- workers and the lanes they hold (leases, PostgreSQL) --------------------------------

function lanesText(lanes) {
  return `${lanes.length === 1 ? "lane" : "lanes"} ${lanes.join(", ")}`;
}

function expiryText(seconds) {
  if (seconds === null || seconds === undefined) return "holds no lane";
  return seconds > 0
    ? `leases expire in ${decimal(seconds)} s`
    : `leases expired ${decimal(-seconds)} s ago`;
}

function makeWorker(worker) {
  const li = element("li", "worker");
  li.dataset.worker = worker.worker;
  const head = element("div", "worker-head");
  const expiry = element("span", "worker-expiry");
  expiry.dataset.field = "expiry";
  head.append(element("span", "worker-id", worker.worker), expiry);
  const groups = element("div", "worker-groups");
  li.append(head, groups);
  return { li, expiry, groups, shown: null };
}

/** One line per processor group the worker holds lanes of (rebuilt only on a change). */
function fillWorkerGroups(entry, lanes) {
  const shown = JSON.stringify(lanes);
  if (entry.shown === shown) return;
  entry.shown = shown;
  entry.groups.replaceChildren();
  const names = Object.keys(lanes).sort();
  if (!names.length) entry.groups.append(element("div", "worker-group idle", "standing by"));
  for (const name of names) {
    const row = element("div", "worker-group");
    row.dataset.group = name;
    const held = element("span", "group-lanes", lanesText(lanes[name]));
    held.dataset.field = "lanes";
    row.append(element("span", "group-name", name), held);
    entry.groups.append(row);
  }
}

function forgetWorkers(keep) {
  for (const [id, entry] of view.workerElements) {
    if (!keep.has(id)) {
      entry.li.remove();
      view.workerElements.delete(id);
    }
  }
}

function renderWorkers(message) {
  const box = $("#workers");
  const leased = Boolean(message.leased);
  box.dataset.leased = String(leased);
  const unheld = $("#unheld");
  if (!leased) {
    setText($("#workers-note"), "one process runs every lane (this store has no leases)");
    forgetWorkers(new Set());
    unheld.hidden = true;
    return;
  }
  const workers = message.workers || [];
  setText(
    $("#workers-note"),
    workers.length
      ? `${count(workers.length)} live · lanes shared by leases`
      : "none live: no lane is processed",
  );
  const list = $("#worker-list");
  for (const worker of workers) {
    let entry = view.workerElements.get(worker.worker);
    if (!entry) {
      entry = makeWorker(worker);
      view.workerElements.set(worker.worker, entry);
    }
    list.append(entry.li); // keeps the server's order (by id)
    setText(entry.expiry, expiryText(worker.lease_expires_in));
    fillWorkerGroups(entry, worker.lanes);
  }
  forgetWorkers(new Set(workers.map((worker) => worker.worker)));
  const orphaned = Object.entries(message.unheld || {})
    .filter(([, lanes]) => lanes.length)
    .map(([name, lanes]) => `${name} ${lanesText(lanes)}`);
  unheld.hidden = !orphaned.length;
  setText(unheld, orphaned.length ? `No worker holds ${orphaned.join(" · ")}` : "");
}

function sampleChart(message) {
  const written = Object.values(message.heads).reduce((sum, head) => sum + head, 0);
  const names = message.processors.map((s) => s.processor);
  const report = names.find((name) => name.replace(/@v\d+$/, "") === "reporting"); // any version
  const last = report || names[names.length - 1];
  const reporting = message.processors.filter((s) => s.processor === last);
  const reported = reporting.reduce((sum, s) => sum + s.checkpoint, 0);
  const lag = reporting.reduce((most, s) => Math.max(most, s.lag_events), 0);
  const sample = chart.add(Date.now(), written, reported, lag);
  if (sample) {
    setText(document.querySelector('[data-legend="written"]'), decimal(sample.written));
    setText(document.querySelector('[data-legend="reported"]'), decimal(sample.reported));
  }
  setText(document.querySelector('[data-legend="lag"]'), count(lag));
}

// -- today's sales ----------------------------------------------------------------------

function setSales(name, text) {
  for (const node of document.querySelectorAll(`[data-sales="${name}"]`)) setText(node, text);
}

/** Today's takings by tender and the hourly chart, with a row per hour for screen readers. */
function renderSales(message) {
  const day = message.day;
  setSales("cash", money(day.cash));
  setSales("card", money(day.card));
  setSales("revenue", money(day.revenue));
  setSales("checkouts", count(day.checkouts));
  $("#kpi-takings").title =
    `${message.date} (${message.time_zone}): revenue ${money(day.revenue)}, ` +
    `refunds ${money(day.refunds)}, as of position ${message.as_of.position}`;
  setText(
    $("#hours-note"),
    `${message.date} · ${message.time_zone} · as of #${count(message.as_of.position)}`,
  );
  const now = serverNow() * 1000;
  let current = -1;
  message.hours.forEach((hour, i) => {
    if (Date.parse(hour.hour) <= now) current = i;
  });
  hoursChart.update(message.hours, current);
  const body = $("#hours-table tbody");
  body.replaceChildren(
    ...message.hours.map((hour) => {
      const tr = element("tr");
      tr.dataset.hour = hour.hour;
      const cells = [
        ["hour", hourLabel(hour.hour)],
        ["checkouts", count(hour.checkouts)],
        ["revenue", money(hour.revenue)],
        ["cash", money(hour.cash)],
        ["card", money(hour.card)],
      ];
      for (const [field, text] of cells) {
        const td = element("td", "", text);
        td.dataset.field = field;
        tr.append(td);
      }
      return tr;
    }),
  );
}

function clearSales() {
  for (const name of ["cash", "card", "revenue", "checkouts"]) setSales(name, "–");
  setText($("#hours-note"), "–");
  $("#hours-table tbody").replaceChildren();
  hoursChart.clear();
}

// -- connection, token and sign-in ------------------------------------------------------

function setConnection(state, label) {
  const badge = $("#connection");
  badge.dataset.state = state;
  setText(badge.querySelector(".label"), label);
}

function showNotice(text, tone) {
  const notice = $("#notice");
  notice.hidden = !text;
  notice.dataset.tone = tone || "warning";
  setText(notice, text || "");
}

function onStreamState(state, details) {
  view.live = state === "live";
  renderFreshness();
  switch (state) {
    case "connecting":
      setConnection("connecting", "connecting…");
      break;
    case "live":
      setConnection("live", "live");
      showNotice("");
      document.body.classList.remove("stale");
      if (details.serverDate !== null) {
        const offset = details.serverDate - Date.now();
        view.clockOffset = Math.abs(offset) > 2000 ? offset : 0;
      }
      chart.rebase();
      break;
    case "retrying": {
      const seconds = Math.round(details.delay / 1000);
      setConnection("retrying", `reconnecting in ${seconds} s`);
      showNotice(
        `Lost the live stream: ${details.reason}. Reconnecting in ${seconds} s — ` +
          "the figures below are as they were and may be out of date.",
        "warning",
      );
      document.body.classList.add("stale");
      break;
    }
    case "refused":
      view.stream = null;
      sessionStorage.removeItem(TOKEN_KEY);
      setConnection("refused", "token refused");
      showNotice("");
      showSignIn(
        details.status === 401
          ? `The server refused this token: ${details.detail}. Check that it was pasted ` +
              "whole, or ask for a new viewer token."
          : `This token may not view the dashboard: ${details.detail}.`,
      );
      break;
    default:
      break;
  }
}

function onStreamEvent(name, data) {
  if (name === "report") onReport(data);
  else if (name === "processors") renderProcessors(data);
  else if (name === "sales") renderSales(data);
}

function connect(token) {
  if (view.stream) view.stream.stop();
  $("#signin").hidden = true;
  $("#sign-out").hidden = false;
  view.stream = new LiveStream({
    url: STREAM_URL,
    token,
    onEvent: onStreamEvent,
    onState: onStreamState,
  });
  view.stream.start();
}

function showSignIn(error) {
  $("#signin").hidden = false;
  $("#board").hidden = true;
  const freshness = $("#freshness");
  delete freshness.dataset.lag;
  setText(freshness, "");
  $("#sign-out").hidden = true;
  const message = $("#signin-error");
  message.hidden = !error;
  setText(message, error || "");
  $("#token").value = "";
  $("#token").focus();
}

/** Forgets everything shown (another token may see another shop). */
function clearBoard() {
  for (const entry of view.rowElements.values()) entry.tr.remove();
  for (const entry of view.processorElements.values()) entry.li.remove();
  forgetWorkers(new Set());
  view.rows.clear();
  view.rowElements.clear();
  view.processorElements.clear();
  view.totals = null;
  view.freshness = null;
  chart.clear();
  clearSales();
}

function signOut() {
  if (view.stream) view.stream.stop();
  view.stream = null;
  clearBoard();
  sessionStorage.removeItem(TOKEN_KEY);
  setConnection("signed-out", "signed out");
  showNotice("");
  showSignIn("");
}

/** A token in the URL fragment (#token=…) moves to sessionStorage and out of the URL. */
function tokenFromFragment() {
  const fragment = new URLSearchParams(window.location.hash.slice(1));
  const token = fragment.get("token");
  if (!token) return null;
  fragment.delete("token");
  const rest = fragment.toString();
  const url = window.location.pathname + window.location.search + (rest ? `#${rest}` : "");
  window.history.replaceState(null, "", url);
  return token.trim();
}

function start() {
  const fromFragment = tokenFromFragment();
  if (fromFragment) sessionStorage.setItem(TOKEN_KEY, fromFragment);
  $("#signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("#token").value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    clearBoard();
    connect(token);
  });
  $("#sign-out").addEventListener("click", signOut);
  for (const th of document.querySelectorAll("#report th[data-sort]")) {
    th.tabIndex = 0;
    const choose = () => {
      const key = th.dataset.sort;
      view.sort =
        view.sort.key === key
          ? { key, direction: -view.sort.direction }
          : { key, direction: key === "name" ? 1 : -1 };
      renderSortMarks();
      renderRows([], false);
    };
    th.addEventListener("click", choose);
    th.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        choose();
      }
    });
  }
  renderSortMarks();
  setInterval(renderAges, 1000);
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) connect(token);
  else showSignIn("");
}

start();
