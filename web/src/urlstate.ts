// The view in the URL (its hash), so a view can be shared and reloaded: centre, zoom, layers with their
// opacity and visibility, time, compare mode. Pure logic: parse and format only.

export type CompareMode = 'none' | 'swipe' | 'side';

export interface LayerState {
  /** "COLLECTION/ITEM" or "COLLECTION" (a mosaic) */
  id: string;
  opacity: number;
  visible: boolean;
}

export interface ViewState {
  center: [number, number]; // lon, lat in degrees
  zoom: number;
  layers: LayerState[];
  time?: string; // ISO date or date-time
  compare: CompareMode;
  /** The layer shown on the right of the swipe bar / in the right-hand map. */
  compareLayer?: string;
  /** Swipe bar position, 0 (left) to 1 (right). */
  swipe: number;
}

export const DEFAULT_VIEW: ViewState = { center: [0, 20], zoom: 2, layers: [], compare: 'none', swipe: 0.5 };

const round = (v: number, digits: number) => Number(v.toFixed(digits));
const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));

// Layer ids may hold '/' (collection/item) and ':' never: ':' separates the opacity.
function formatLayer(l: LayerState): string {
  return `${encodeURIComponent(l.id).replace(/%2F/g, '/')}:${round(l.opacity, 2)}${l.visible ? '' : ':h'}`;
}

function parseLayer(text: string): LayerState | undefined {
  const [id, opacity, hidden] = text.split(':');
  if (!id) return undefined;
  const o = opacity === undefined || opacity === '' ? 1 : Number(opacity);
  let decoded: string;
  try {
    decoded = decodeURIComponent(id);
  } catch {
    return undefined;
  }
  return { id: decoded, opacity: Number.isFinite(o) ? clamp(o, 0, 1) : 1, visible: hidden !== 'h' };
}

/** The hash of a view (without the '#'); members at their default are left out. */
export function formatView(v: ViewState): string {
  const p = new URLSearchParams();
  p.set('c', `${round(v.center[0], 5)},${round(v.center[1], 5)}`);
  p.set('z', String(round(v.zoom, 2)));
  if (v.layers.length) p.set('l', v.layers.map(formatLayer).join(','));
  if (v.time) p.set('t', v.time);
  if (v.compare !== 'none') {
    p.set('cmp', v.compare);
    if (v.compareLayer) p.set('r', v.compareLayer);
    if (v.compare === 'swipe' && v.swipe !== 0.5) p.set('s', String(round(v.swipe, 3)));
  }
  // URLSearchParams escapes '/' and ','; both are safe in a hash and easier to read as is.
  return p.toString().replace(/%2F/g, '/').replace(/%2C/g, ',').replace(/%3A/g, ':');
}

/** The view a hash describes; what is missing or malformed keeps its default, never throws. */
export function parseView(hash: string): ViewState {
  const p = new URLSearchParams(hash.replace(/^#/, ''));
  const v: ViewState = { ...DEFAULT_VIEW, center: [...DEFAULT_VIEW.center], layers: [] };
  const c = (p.get('c') ?? '').split(',').map(Number);
  if (c.length === 2 && c.every(Number.isFinite)) v.center = [clamp(c[0]!, -180, 180), clamp(c[1]!, -85, 85)];
  const z = Number(p.get('z'));
  if (p.has('z') && Number.isFinite(z)) v.zoom = clamp(z, 0, 24);
  const l = p.get('l');
  if (l) v.layers = l.split(',').map(parseLayer).filter((x): x is LayerState => x !== undefined);
  const t = p.get('t');
  if (t && /^\d{4}-\d{2}-\d{2}([T ][\d:.]+Z?)?$/.test(t)) v.time = t;
  const cmp = p.get('cmp');
  if (cmp === 'swipe' || cmp === 'side') v.compare = cmp;
  const r = p.get('r');
  if (r) v.compareLayer = r;
  const s = Number(p.get('s'));
  if (p.has('s') && Number.isFinite(s)) v.swipe = clamp(s, 0, 1);
  return v;
}
