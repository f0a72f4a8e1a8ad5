// Colour scales of the legends and the EGMS points: the same names the map server's `colormap` takes, so a
// legend drawn here and a tile drawn there agree.

export type Rgb = [number, number, number];

/** Control colours, evenly spaced from 0 to 1: the same as deforma's renderer (src/render/colormap.cpp). */
export const SCALES: Record<string, string[]> = {
  // For magnitudes (speed, correlation).
  sequential: ['#301255', '#3e4a8a', '#2a788e', '#22a384', '#7ace54', '#fae628'],
  // For displacement and velocity of either sign: blue (negative) to red (positive).
  diverging: ['#243e96', '#739bd2', '#f5f5f5', '#e18769', '#a51928'],
  // EGMS Explorer's scale: red = subsidence/away from the satellite, blue = uplift/towards it.
  egms: ['#d7191c', '#fdae61', '#ffffbf', '#abd9e9', '#2c7bb6'],
  gray: ['#000000', '#ffffff'],
};

export function parseHex(hex: string): Rgb {
  const m = /^#?([0-9a-f]{6})$/i.exec(hex.trim());
  if (!m) throw new Error(`colour '${hex}': expected #rrggbb`);
  const n = parseInt(m[1]!, 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

export function toHex([r, g, b]: Rgb): string {
  return '#' + [r, g, b].map((c) => Math.round(c).toString(16).padStart(2, '0')).join('');
}

/** Other names the map server's `colormap=` takes for the same scales. */
const ALIASES: Record<string, string> = { viridis: 'sequential', speed: 'sequential', rdbu: 'diverging', displacement: 'diverging' };

export function scaleColors(name: string): string[] {
  return SCALES[ALIASES[name] ?? name] ?? SCALES.sequential!;
}

/** The colour of `t` in [0, 1] (clamped) on a scale, interpolated linearly between its control colours. */
export function colorAt(scale: string, t: number): Rgb {
  const stops = scaleColors(scale).map(parseHex);
  const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  const a = stops[i]!;
  const b = stops[i + 1]!;
  return [a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f];
}

/** The colour of a value on a scale stretched over [min, max]. */
export function colorOf(scale: string, value: number, min: number, max: number): Rgb {
  return colorAt(scale, max === min ? 0.5 : (value - min) / (max - min));
}

export interface LegendStop {
  value: number;
  color: string;
}

export interface Legend {
  title: string;
  units: string;
  min: number;
  max: number;
  colormap: string;
  stops: LegendStop[];
}

/** The colour of a value from a server legend's stops (linear between stops, clamped at the ends). */
export function colorFromStops(stops: LegendStop[], value: number): Rgb {
  if (!stops.length) return [128, 128, 128];
  const sorted = [...stops].sort((a, b) => a.value - b.value);
  if (value <= sorted[0]!.value) return parseHex(sorted[0]!.color);
  for (let i = 1; i < sorted.length; i++) {
    const hi = sorted[i]!;
    if (value <= hi.value) {
      const lo = sorted[i - 1]!;
      const f = hi.value === lo.value ? 1 : (value - lo.value) / (hi.value - lo.value);
      const a = parseHex(lo.color);
      const b = parseHex(hi.color);
      return [a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f];
    }
  }
  return parseHex(sorted[sorted.length - 1]!.color);
}

/** A CSS linear-gradient of a scale, for the legend bar. */
export function cssGradient(scale: string): string {
  const stops = scaleColors(scale);
  return `linear-gradient(to right, ${stops.join(', ')})`;
}

/** Parses "min,max" as the map server's `rescale` takes it; undefined when it is not two ordered numbers. */
export function parseRescale(text: string): [number, number] | undefined {
  const parts = text.split(',').map((s) => s.trim());
  if (parts.length !== 2 || parts.some((p) => p === '')) return undefined;
  const [a, b] = parts.map(Number) as [number, number];
  return Number.isFinite(a) && Number.isFinite(b) && a < b ? [a, b] : undefined;
}

/** Evenly spaced, rounded tick values for a legend over [min, max]. */
export function legendTicks(min: number, max: number, count = 5): number[] {
  if (!(max > min)) return [min];
  const raw = (max - min) / Math.max(1, count - 1);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}
