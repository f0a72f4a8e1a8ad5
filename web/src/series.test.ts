import { describe, expect, it } from 'vitest';
import { epochSeconds, plotData, seriesCsv, velocityLabel, velocityLine } from './series';

const s = {
  dates: ['2020-01-01', '2020-07-01', '2021-01-01'],
  values: [0, -5, -10],
  sigma: [1, 1, null],
  units: 'mm',
  velocity: -10,
  velocity_sigma: 0.25,
  velocity_units: 'mm/yr',
};

describe('series', () => {
  it('plots values with their uncertainty band', () => {
    const [t, v, lo, hi] = plotData(s);
    expect(t![0]).toBe(epochSeconds('2020-01-01'));
    expect(v).toEqual([0, -5, -10]);
    expect(lo).toEqual([-1, -6, null]);
    expect(hi).toEqual([1, -4, null]);
  });
  it('draws the velocity line with the fitted slope', () => {
    const line = velocityLine(s)!;
    const years = (epochSeconds('2021-01-01') - epochSeconds('2020-01-01')) / (365.25 * 86400);
    expect((line[2]! - line[0]!) / years).toBeCloseTo(-10, 6);
    expect(velocityLabel(s)).toBe('velocity -10.0 ± 0.3 mm/yr');
  });
  it('writes one CSV row per point and date', () => {
    const csv = seriesCsv([{ label: 'pid "7"', lon: 13.18, lat: 38.7, series: s }]);
    expect(csv.split('\n')).toEqual([
      'point,lon,lat,date,value,sigma,units',
      '"pid ""7""",13.18,38.7,2020-01-01,0,1,mm',
      '"pid ""7""",13.18,38.7,2020-07-01,-5,1,mm',
      '"pid ""7""",13.18,38.7,2021-01-01,-10,,mm',
      '',
    ]);
    expect(() => epochSeconds('soon')).toThrow(/ISO 8601/);
  });
});
