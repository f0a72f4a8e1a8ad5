import { describe, expect, it } from 'vitest';
import { DEFAULT_VIEW, formatView, parseView } from './urlstate';
import type { ViewState } from './urlstate';

describe('URL state', () => {
  it('round-trips a full view', () => {
    const v: ViewState = {
      center: [-141.5, 60.12345],
      zoom: 11.5,
      layers: [
        { id: 'yahtse/velocity-2016', opacity: 0.7, visible: true },
        { id: 'egms-ustica', opacity: 1, visible: false },
      ],
      time: '2016-08-03',
      compare: 'swipe',
      compareLayer: 'yahtse/velocity-2017',
      swipe: 0.25,
    };
    const hash = formatView(v);
    expect(hash).toBe('c=-141.5,60.12345&z=11.5&l=yahtse/velocity-2016:0.7,egms-ustica:1:h&t=2016-08-03&cmp=swipe&r=yahtse/velocity-2017&s=0.25');
    expect(parseView('#' + hash)).toEqual(v);
  });

  it('keeps layer ids with odd characters intact', () => {
    const v: ViewState = { ...DEFAULT_VIEW, layers: [{ id: 'user-alice/job 1,a:b', opacity: 0.5, visible: true }] };
    expect(parseView(formatView(v)).layers).toEqual(v.layers);
  });

  it('falls back to defaults on malformed input and clamps ranges', () => {
    const v = parseView('#c=abc&z=99&l=a:7,:0.5,b:x&t=yesterday&cmp=zoom&s=-3');
    expect(v.center).toEqual(DEFAULT_VIEW.center);
    expect(v.zoom).toBe(24);
    expect(v.layers).toEqual([
      { id: 'a', opacity: 1, visible: true },
      { id: 'b', opacity: 1, visible: true },
    ]);
    expect(v.time).toBeUndefined();
    expect(v.compare).toBe('none');
    expect(v.swipe).toBe(0);
    expect(parseView('')).toEqual(DEFAULT_VIEW);
  });
});
