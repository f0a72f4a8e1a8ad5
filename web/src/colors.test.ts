import { describe, expect, it } from 'vitest';
import { colorAt, colorFromStops, colorOf, legendTicks, parseHex, parseRescale, toHex } from './colors';

describe('colour scales', () => {
  it('hits the control colours at the ends and interpolates between them', () => {
    expect(toHex(colorAt('viridis', 0))).toBe('#301255');
    expect(toHex(colorAt('sequential', 1))).toBe('#fae628');
    expect(toHex(colorAt('gray', 0.5))).toBe('#808080');
    expect(toHex(colorAt('gray', -3))).toBe('#000000');
    expect(toHex(colorAt('gray', NaN))).toBe('#000000');
  });
  it('stretches a value over a range; the diverging scale is white at its middle', () => {
    expect(toHex(colorOf('rdbu', 0, -10, 10))).toBe('#f5f5f5');
    expect(toHex(colorOf('diverging', -10, -10, 10))).toBe('#243e96');
    expect(toHex(colorOf('gray', 15, 10, 20))).toBe('#808080');
  });
  it('follows a server legend between its stops', () => {
    const stops = [
      { value: 10, color: '#ffffff' },
      { value: 0, color: '#000000' },
    ];
    expect(toHex(colorFromStops(stops, 5))).toBe('#808080');
    expect(toHex(colorFromStops(stops, -1))).toBe('#000000');
    expect(toHex(colorFromStops(stops, 99))).toBe('#ffffff');
  });
  it('parses colours and rescale ranges, refusing malformed ones', () => {
    expect(parseHex('#2166ac')).toEqual([0x21, 0x66, 0xac]);
    expect(() => parseHex('red')).toThrow(/expected #rrggbb/);
    expect(parseRescale('-5, 12.5')).toEqual([-5, 12.5]);
    expect(parseRescale('5,5')).toBeUndefined();
    expect(parseRescale('1,')).toBeUndefined();
    expect(parseRescale('a,b')).toBeUndefined();
  });
  it('gives round legend ticks', () => {
    expect(legendTicks(0, 100)).toEqual([0, 25, 50, 75, 100]);
    expect(legendTicks(-3.2, 3.2)).toEqual([-2, 0, 2]);
    expect(legendTicks(1, 1)).toEqual([1]);
  });
});
