// The point panel: the values of all visible layers where the user clicked and, for series (deforma cubes,
// EGMS points), the displacement time series with its uncertainty band and fitted velocity line; several
// points overlaid; CSV and PNG downloads.

import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

import { download, h } from '../dom';
import { plotData, seriesCsv, velocityLabel } from '../series';
import type { PointValue, Series } from '../series';

const COLORS = ['#1f78b4', '#e31a1c', '#33a02c', '#ff7f00', '#6a3d9a'];

interface Plotted {
  label: string;
  lon: number;
  lat: number;
  series: Series;
}

export class PointPanel {
  private plotted: Plotted[] = [];
  private plot?: uPlot;
  private table: HTMLTableElement;
  private plotBox: HTMLElement;

  constructor(private root: HTMLElement) {
    this.table = root.querySelector('#point-values')!;
    this.plotBox = root.querySelector('#plot')!;
    root.querySelector('#point-close')!.addEventListener('click', () => (root.hidden = true));
    root.querySelector('#plot-csv')!.addEventListener('click', () =>
      download('deforma-series.csv', new Blob([seriesCsv(this.plotted)], { type: 'text/csv' })));
    root.querySelector('#plot-png')!.addEventListener('click', () => {
      const canvas = this.plotBox.querySelector('canvas');
      canvas?.toBlob((b) => b && download('deforma-series.png', b));
    });
    root.querySelector('#plot-clear')!.addEventListener('click', () => {
      this.plotted = [];
      this.draw();
    });
  }

  showValues(lon: number, lat: number, rows: { layer: string; values: PointValue[] }[]): void {
    this.root.hidden = false;
    this.table.replaceChildren(
      h('caption', {}, `${lat.toFixed(5)}°, ${lon.toFixed(5)}°`),
      // A layer without data at the point takes one line, not one per band.
      ...rows.filter((r) => r.values.every((v) => v.value === null || v.value === undefined)).map((r) =>
        h('tr', { 'data-layer': r.layer }, h('th', { scope: 'row' }, r.layer), h('td', { class: 'value', colspan: 2 }, r.values[0]?.name && !r.values[0]?.units && r.values.length === 1 ? r.values[0].name : 'no data here'))),
      ...rows.filter((r) => r.values.some((v) => v.value !== null && v.value !== undefined)).flatMap((r) =>
        r.values.map((v) =>
          h('tr', { 'data-name': v.name },
            h('th', { scope: 'row' }, `${r.layer} · ${v.name}`),
            h('td', { class: 'value' }, v.value === null || v.value === undefined ? 'no data' : formatValue(v.value)),
            h('td', { class: 'units' }, v.units ?? '')))),
    );
  }

  addSeries(label: string, lon: number, lat: number, series: Series): void {
    this.root.hidden = false;
    this.plotted = [...this.plotted.filter((p) => p.label !== label), { label, lon, lat, series }].slice(-COLORS.length);
    this.draw();
  }

  /** What is plotted: each point's label and number of dates (read by the end-to-end tests). */
  get plottedSeries(): { label: string; dates: number }[] {
    return this.plotted.map((p) => ({ label: p.label, dates: p.series.dates.length }));
  }

  private draw(): void {
    this.plot?.destroy();
    this.plot = undefined;
    this.plotBox.replaceChildren();
    if (!this.plotted.length) return;
    // One x axis: the union of every point's dates; each point's columns aligned on it.
    const times = [...new Set(this.plotted.flatMap((p) => plotData(p.series)[0] as number[]))].sort((a, b) => a - b);
    const data: (number | null)[][] = [times];
    const series: uPlot.Series[] = [{}];
    const bands: uPlot.Band[] = [];
    this.plotted.forEach((p, k) => {
      const cols = plotData(p.series);
      const index = new globalThis.Map((cols[0] as number[]).map((t, i) => [t, i]));
      const align = (col: (number | null)[]) => times.map((t) => (index.has(t) ? col[index.get(t)!] ?? null : null));
      const color = COLORS[k % COLORS.length]!;
      const base = data.length;
      data.push(align(cols[1]!), align(cols[2]!), align(cols[3]!), align(cols[4]!));
      const v = velocityLabel(p.series);
      series.push(
        { label: `${p.label}${v ? ` (${v})` : ''}`, stroke: color, width: 1.5, points: { show: true, size: 5 }, spanGaps: true },
        { label: '−σ', stroke: 'transparent', points: { show: false } },
        { label: '+σ', stroke: 'transparent', points: { show: false } },
        { label: 'velocity', stroke: color, dash: [6, 4], width: 1, points: { show: false }, spanGaps: true },
      );
      bands.push({ series: [base + 2, base + 1], fill: `${color}33` });
    });
    const width = Math.max(280, this.plotBox.clientWidth || 360);
    this.plot = new uPlot(
      {
        width,
        height: 220,
        series,
        bands,
        axes: [{}, { label: this.plotted[0]!.series.units ?? '' }],
        // Our own legend below: one line per point with its velocity, not uPlot's per-column table.
        legend: { show: false },
        cursor: { drag: { x: true, y: false } },
      },
      data as uPlot.AlignedData,
      this.plotBox,
    );
    this.plotBox.append(
      h('ul', { class: 'plot-legend' }, ...this.plotted.map((p, k) => {
        const v = velocityLabel(p.series);
        return h('li', {}, h('span', { class: 'swatch', style: `background:${COLORS[k % COLORS.length]}` }),
          `${p.label}: ${p.series.dates.length} dates${v ? `, ${v}` : ''} (band ±σ, dashed: velocity fit)`);
      })),
    );
  }
}

function formatValue(v: number): string {
  const a = Math.abs(v);
  return a !== 0 && (a < 0.01 || a >= 1e6) ? v.toExponential(3) : v.toFixed(a < 10 ? 3 : a < 1000 ? 2 : 1);
}
