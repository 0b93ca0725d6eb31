// A small hand-drawn canvas chart: events per second written to the log and reported
// (two lines, upper panel) and the report's lag in events (an area, lower panel), over a
// sliding window of up to two minutes. Samples come from the pipeline messages, about one
// a second.

const WINDOW_MS = 120000;
const SHORTEST_MS = 30000;
const COLORS = {
  written: "#2563eb",
  reported: "#0f9d76",
  lag: "#e0871b",
  grid: "#e6e9ef",
  text: "#6b7385",
};

/** The smallest "nice" ceiling (1, 2, 5 × 10^n) at or above `value`. */
export function niceCeiling(value) {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) {
    if (value <= step * power) return step * power;
  }
  return 10 * power;
}

/**
 * The canvas sized to its box at the screen's pixel ratio and cleared: {g, width, height}
 * in CSS pixels, or null while it has no size.
 */
export function prepare(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  if (width === 0 || height === 0) return null;
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const g = canvas.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, width, height);
  g.font = "11px system-ui, sans-serif";
  g.textBaseline = "middle";
  return { g, width, height };
}

function ago(ms) {
  const seconds = Math.round(ms / 1000);
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  const rest = seconds % 60;
  return rest ? `${minutes} min ${rest} s` : `${minutes} min`;
}

function compact(value) {
  if (value >= 10000) return `${Math.round(value / 1000)}k`;
  if (value >= 1000) return `${(value / 1000).toFixed(1)}k`;
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}

export class ThroughputChart {
  constructor(canvas) {
    this.canvas = canvas;
    this.samples = [];
    this.last = null;
    this.pending = false;
    new ResizeObserver(() => this.draw()).observe(canvas);
  }

  /** Adds the totals seen at time `now` (ms): log positions written and reported, lag. */
  add(now, written, reported, lag) {
    const last = this.last;
    this.last = { now, written, reported };
    if (last === null || now <= last.now) return null;
    const seconds = (now - last.now) / 1000;
    const sample = {
      t: now,
      written: Math.max(0, (written - last.written) / seconds),
      reported: Math.max(0, (reported - last.reported) / seconds),
      lag,
    };
    this.samples.push(sample);
    while (this.samples.length > 0 && this.samples[0].t < now - WINDOW_MS) this.samples.shift();
    this.schedule();
    return sample;
  }

  /** Forget every sample. */
  clear() {
    this.samples = [];
    this.last = null;
    this.schedule();
  }

  /** Forget the rates' base (after a reconnect the counters may have moved a lot). */
  rebase() {
    this.last = null;
  }

  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.draw();
    });
  }

  draw() {
    const prepared = prepare(this.canvas);
    if (prepared === null) return;
    const { g, width, height } = prepared;

    const left = 34;
    const right = width - 6;
    const upper = { top: 16, bottom: Math.round(height * 0.58) };
    const lower = { top: upper.bottom + 26, bottom: height - 16 };
    // the window grows with the samples, from 30 s to 2 min
    const end = this.samples.length ? this.samples[this.samples.length - 1].t : Date.now();
    const first = this.samples.length ? this.samples[0].t : end;
    const span = Math.min(WINDOW_MS, Math.max(SHORTEST_MS, end - first));
    const start = end - span;
    const x = (t) => left + ((t - start) / span) * (right - left);

    const rates = this.samples.map((s) => Math.max(s.written, s.reported));
    const rateTop = niceCeiling(Math.max(1, ...rates));
    const lagTop = niceCeiling(Math.max(2, ...this.samples.map((s) => s.lag)));
    this.axis(g, upper, left, right, rateTop, "events per second");
    this.axis(g, lower, left, right, lagTop, "report lag, events");

    g.fillStyle = COLORS.text;
    g.textAlign = "left";
    g.fillText(`−${ago(span)}`, left, height - 6);
    g.textAlign = "center";
    g.fillText(`−${ago(span / 2)}`, (left + right) / 2, height - 6);
    g.textAlign = "right";
    g.fillText("now", right, height - 6);

    if (this.samples.length === 0) {
      g.textAlign = "center";
      g.fillText("collecting samples…", (left + right) / 2, (upper.top + upper.bottom) / 2);
      return;
    }
    const yRate = (v) => upper.bottom - (v / rateTop) * (upper.bottom - upper.top);
    const yLag = (v) => lower.bottom - (v / lagTop) * (lower.bottom - lower.top);

    this.area(g, this.samples, x, (s) => yRate(s.reported), upper.bottom, "rgba(15, 157, 118, 0.22)");
    this.line(g, this.samples, x, (s) => yRate(s.reported), COLORS.reported, 1.5);
    this.line(g, this.samples, x, (s) => yRate(s.written), COLORS.written, 2, [6, 3]);
    this.area(g, this.samples, x, (s) => yLag(s.lag), lower.bottom, "rgba(224, 135, 27, 0.25)");
    this.line(g, this.samples, x, (s) => yLag(s.lag), COLORS.lag, 1.5);
  }

  area(g, samples, x, y, base, fill) {
    g.beginPath();
    g.moveTo(x(samples[0].t), base);
    for (const s of samples) g.lineTo(x(s.t), y(s));
    g.lineTo(x(samples[samples.length - 1].t), base);
    g.closePath();
    g.fillStyle = fill;
    g.fill();
  }

  axis(g, panel, left, right, top, title) {
    g.strokeStyle = COLORS.grid;
    g.lineWidth = 1;
    g.fillStyle = COLORS.text;
    g.textAlign = "right";
    for (const fraction of [0, 0.5, 1]) {
      const y = Math.round(panel.bottom - fraction * (panel.bottom - panel.top)) + 0.5;
      g.beginPath();
      g.moveTo(left, y);
      g.lineTo(right, y);
      g.stroke();
      g.fillText(compact(top * fraction), left - 6, y);
    }
    g.textAlign = "left";
    g.fillText(title, left, panel.top - 10);
  }

  line(g, samples, x, y, color, width, dash = []) {
    g.beginPath();
    samples.forEach((s, i) => (i === 0 ? g.moveTo(x(s.t), y(s)) : g.lineTo(x(s.t), y(s))));
    g.strokeStyle = color;
    g.lineWidth = width;
    g.setLineDash(dash);
    g.lineJoin = "round";
    g.stroke();
    g.setLineDash([]);
  }
}
