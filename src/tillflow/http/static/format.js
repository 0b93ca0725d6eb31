// How figures read on the dashboard: money in minor units, counts, ages, clock times.

const grouping = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const oneDecimal = new Intl.NumberFormat("en-US", {
  minimumFractionDigits: 1,
  maximumFractionDigits: 1,
});

/** Minor units as money: 123456 → "1,234.56" (integer arithmetic, like the CLI). */
export function money(cents) {
  const sign = cents < 0 ? "−" : "";
  const whole = Math.abs(cents);
  const units = Math.trunc(whole / 100);
  const rest = whole % 100;
  return `${sign}${grouping.format(units)}.${String(rest).padStart(2, "0")}`;
}

/** An integer with thousands separators; a minus sign, not a hyphen. */
export function count(value) {
  return value < 0 ? `−${grouping.format(-value)}` : grouping.format(value);
}

/** A rate or a number of seconds with one decimal. */
export function decimal(value) {
  return oneDecimal.format(value);
}

/** How long ago, for a person: "just now", "12 s ago", "3 min ago", "2 h ago". */
export function ago(seconds) {
  if (!Number.isFinite(seconds) || seconds < 2) return "just now";
  if (seconds < 60) return `${Math.floor(seconds)} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} d ago`;
}

/** A lag in seconds: "0.0 s", "12.4 s", "3 min 5 s". */
export function duration(seconds) {
  if (seconds < 60) return `${decimal(seconds)} s`;
  const minutes = Math.floor(seconds / 60);
  return `${minutes} min ${Math.floor(seconds - minutes * 60)} s`;
}

/** Unix seconds as the local wall-clock time "14:03:05". */
export function clock(unixSeconds) {
  return new Date(unixSeconds * 1000).toLocaleTimeString("en-GB", { hour12: false });
}

/** A log position, with its lane when the store has more than one. */
export function position(lane, at, lanes) {
  return lanes > 1 ? `${lane}:#${count(at)}` : `#${count(at)}`;
}
