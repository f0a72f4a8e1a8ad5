// A point's displacement time series (the map server's point answer): plot data with the uncertainty band
// and the fitted velocity line, and the CSV a user downloads. Pure logic.

export interface Series {
  dates: string[];
  values: (number | null)[];
  sigma?: (number | null)[];
  units?: string;
  velocity?: number;
  velocity_sigma?: number;
  velocity_units?: string;
}

export interface PointValue {
  asset: string;
  band: number;
  name: string;
  units: string;
  value: number | null;
}

export interface PointAnswer {
  lon: number;
  lat: number;
  values: PointValue[];
  series?: Series;
}

const DAY_S = 86400;
const YEAR_DAYS = 365.25;

/** Seconds since 1970 of an ISO date (uPlot's time axis). */
export function epochSeconds(date: string): number {
  const t = Date.parse(date.length === 10 ? `${date}T00:00:00Z` : date);
  if (Number.isNaN(t)) throw new Error(`date '${date}': expected an ISO 8601 date`);
  return t / 1000;
}

/** The per-year rate unit of a displacement unit: "mm" -> "mm/yr". */
export function rateUnit(units: string | undefined): string {
  return units ? `${units}/yr` : '/yr';
}

/** The velocity line through the series' mean point with its slope, in the series' units per year. */
export function velocityLine(s: Series): (number | null)[] | undefined {
  if (s.velocity === undefined || !s.dates.length) return undefined;
  const t = s.dates.map(epochSeconds);
  const ok = s.values.map((v, i) => (v === null || !Number.isFinite(v) ? -1 : i)).filter((i) => i >= 0);
  if (!ok.length) return undefined;
  const tMean = ok.reduce((a, i) => a + t[i]!, 0) / ok.length;
  const vMean = ok.reduce((a, i) => a + (s.values[i] as number), 0) / ok.length;
  const perSecond = s.velocity / (YEAR_DAYS * DAY_S);
  return t.map((ti) => vMean + perSecond * (ti - tMean));
}

/** The columns uPlot draws: time, value, value - sigma, value + sigma, velocity line. */
export function plotData(s: Series): (number | null)[][] {
  const t = s.dates.map(epochSeconds);
  const lo = s.values.map((v, i) => (v === null || s.sigma?.[i] == null ? null : v - (s.sigma[i] as number)));
  const hi = s.values.map((v, i) => (v === null || s.sigma?.[i] == null ? null : v + (s.sigma[i] as number)));
  return [t, s.values, lo, hi, velocityLine(s) ?? t.map(() => null)];
}

/** "velocity 12.3 ± 0.4 mm/yr" for the legend. */
export function velocityLabel(s: Series): string {
  if (s.velocity === undefined) return '';
  const digits = Math.abs(s.velocity) >= 100 ? 0 : Math.abs(s.velocity) >= 10 ? 1 : 2;
  const sigma = s.velocity_sigma === undefined ? '' : ` ± ${s.velocity_sigma.toFixed(digits)}`;
  return `velocity ${s.velocity.toFixed(digits)}${sigma} ${s.velocity_units ?? rateUnit(s.units)}`;
}

function csvCell(v: string | number | null | undefined): string {
  if (v === null || v === undefined) return '';
  const text = String(v);
  return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** The series of one or several points as one CSV: a row per point and date. */
export function seriesCsv(points: { label: string; lon: number; lat: number; series: Series }[]): string {
  const rows = ['point,lon,lat,date,value,sigma,units'];
  for (const p of points) {
    p.series.dates.forEach((d, i) => {
      rows.push(
        [p.label, p.lon, p.lat, d, p.series.values[i], p.series.sigma?.[i], p.series.units]
          .map(csvCell)
          .join(','),
      );
    });
  }
  return rows.join('\n') + '\n';
}
