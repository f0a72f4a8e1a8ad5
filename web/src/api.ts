// The deforma server's HTTP API as the viewer uses it: every URL relative to the page (so the viewer works
// behind a reverse proxy's prefix), the API key from the browser's session storage sent as Bearer.

const KEY_ITEM = 'deforma.apiKey';

export class ApiError extends Error {
  constructor(
    public status: number,
    message: string,
  ) {
    super(message);
  }
}

export function apiKey(): string | null {
  try {
    return sessionStorage.getItem(KEY_ITEM);
  } catch {
    return null;
  }
}

export function setApiKey(key: string | null): void {
  if (key) sessionStorage.setItem(KEY_ITEM, key);
  else sessionStorage.removeItem(KEY_ITEM);
}

/** An absolute URL of a server path ("processes", "collections/x/items"), relative to the page's folder. */
export function url(path: string): string {
  return new URL(path.replace(/^\//, ''), document.baseURI).toString();
}

export function authHeaders(extra: Record<string, string> = {}): Record<string, string> {
  const key = apiKey();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

/** The plain-words reason of an error answer: the OGC/STAC exception document's detail when there is one. */
async function reason(res: Response): Promise<string> {
  const text = await res.text();
  try {
    const doc = JSON.parse(text) as { detail?: string; description?: string; title?: string };
    return doc.detail ?? doc.description ?? doc.title ?? `${res.status} ${res.statusText}`;
  } catch {
    return text.trim().slice(0, 200) || `${res.status} ${res.statusText}`;
  }
}

export async function request<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
  const init: RequestInit = { method, headers: authHeaders({ Accept: 'application/json', ...headers }) };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    (init.headers as Record<string, string>)['Content-Type'] = 'application/json';
  }
  const res = await fetch(path.startsWith('http') ? path : url(path), init);
  if (!res.ok) throw new ApiError(res.status, await reason(res));
  if (res.status === 204) return undefined as T;
  return (await res.json()) as T;
}

export const getJson = <T>(path: string) => request<T>('GET', path);
export const postJson = <T>(path: string, body: unknown, headers: Record<string, string> = {}) =>
  request<T>('POST', path, body, headers);
export const del = <T>(path: string) => request<T>('DELETE', path);

/** Fetches a binary resource with the key (tiles of private results), as an object URL or bytes. */
export async function fetchBytes(u: string): Promise<ArrayBuffer> {
  const res = await fetch(u, { headers: authHeaders() });
  if (!res.ok) throw new ApiError(res.status, await reason(res));
  return res.arrayBuffer();
}

export interface Link {
  href: string;
  rel: string;
  type?: string;
  title?: string;
}

export interface JobStatus {
  jobID: string;
  processID?: string;
  status: 'accepted' | 'running' | 'successful' | 'failed' | 'dismissed';
  message?: string;
  progress?: number;
  created?: string;
  started?: string;
  finished?: string;
  updated?: string;
  links?: Link[];
}

export interface StacAsset {
  href: string;
  type?: string;
  title?: string;
  roles?: string[];
}

export interface StacItem {
  id: string;
  collection?: string;
  bbox?: number[];
  geometry?: unknown;
  properties: Record<string, unknown> & { datetime?: string | null };
  assets: Record<string, StacAsset>;
  links?: Link[];
}

export interface StacCollection {
  id: string;
  title?: string;
  description?: string;
  keywords?: string[];
  extent?: { spatial?: { bbox?: number[][] }; temporal?: { interval?: (string | null)[][] } };
  summaries?: Record<string, unknown>;
}
