// Sales per hour today: a bar per hour of the shop's day (23 to 25 of them) of the revenue
// taken in it (sales − refunds), from the live stream's `sales` messages. The hour the shop's
// clock is in is drawn darker; hours to come stay empty.

import { niceCeiling, prepare } from "./chart.js";
import { money } from "./format.js";

const COLORS = { bar: "#2563eb", now: "#1e3a8a", grid: "#e6e9ef", text: "#6b7385" };

/** "14" for "2026-12-06T14:00:00+01:00": the hour as the shop's clock reads it. */
export function hourLabel(iso) {
  return iso.slice(11, 13);
}

export class HourlyChart {
  constructor(canvas) {
    this.canvas = canvas;
    this.hours = [];
    this.current = -1;
    new ResizeObserver(() => this.draw()).observe(canvas);
  }

  /** Shows `hours` ({hour, revenue, …} per hour); `current`: the index of the hour now. */
  update(hours, current) {
    this.hours = hours;
    this.current = current;
    requestAnimationFrame(() => this.draw());
  }

  clear() {
    this.update([], -1);
  }

  draw() {
    const prepared = prepare(this.canvas);
    if (prepared === null) return;
    const { g, width, height } = prepared;
    const left = 64;
    const right = width - 6;
    const top = 10;
    const bottom = height - 18;
    const most = niceCeiling(Math.max(100, ...this.hours.map((h) => h.revenue)));
    g.strokeStyle = COLORS.grid;
    g.fillStyle = COLORS.text;
    g.textAlign = "right";
    for (const fraction of [0, 0.5, 1]) {
      const y = Math.round(bottom - fraction * (bottom - top)) + 0.5;
      g.beginPath();
      g.moveTo(left, y);
      g.lineTo(right, y);
      g.stroke();
      g.fillText(money(Math.round(most * fraction)), left - 6, y);
    }
    const count = this.hours.length;
    if (count === 0) {
      g.textAlign = "center";
      g.fillText("waiting for today's sales…", (left + right) / 2, (top + bottom) / 2);
      return;
    }
    const slot = (right - left) / count;
    const bar = Math.max(1, slot * 0.7);
    g.textAlign = "center";
    this.hours.forEach((hour, i) => {
      const x = left + i * slot + (slot - bar) / 2;
      const value = Math.max(0, hour.revenue);
      const h = (value / most) * (bottom - top);
      g.fillStyle = i === this.current ? COLORS.now : COLORS.bar;
      g.fillRect(x, bottom - h, bar, h);
      if (i % 3 === 0) {
        g.fillStyle = COLORS.text;
        g.fillText(hourLabel(hour.hour), x + bar / 2, height - 8);
      }
    });
  }
}
