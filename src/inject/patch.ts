import fastJsonPatch, { type Operation } from 'fast-json-patch';

export type { Operation };

/** The JSON Patch (RFC 6902) that turns `original` into `desired`. */
export function buildPatch(original: object, desired: object): Operation[] {
  return fastJsonPatch.compare(original, desired);
}

/** Applies a patch to a copy of the document (tests and `meshlet inject` use it to show the result). */
export function applyPatch<T extends object>(document: T, patch: readonly Operation[]): T {
  return fastJsonPatch.applyPatch(structuredClone(document), patch as Operation[], true, false).newDocument;
}
