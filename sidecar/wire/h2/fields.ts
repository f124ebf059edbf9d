/**
 * Checks of decoded header fields against RFC 9113 8.2 and 8.3: a message that fails one is
 * malformed and must never be forwarded. Each check returns what was wrong, or undefined.
 * `fields` is the flat [name, value, name, value, ...] list the HPACK decoder produces; the checks
 * walk it once with char codes and allocate nothing unless a field is bad.
 *
 * What a field may hold (fieldProblem) depends on the field alone, so the HPACK decoder judges each
 * entry of its tables once, when the entry is made, and reports per header block only the fields
 * whose content still needs judging: `unchecked`, the positions (of names, ascending) in `fields`
 * of the literals and of table entries that failed. The checks below judge the content of exactly
 * those (of every field when `unchecked` is not given), and the names, order and count of
 * pseudo-headers (which depend on the whole block) every time.
 */

/** Request pseudo-header fields (RFC 9113 8.3.1), as a bit each so duplicates are seen cheaply. */
const METHOD_BIT = 1;
const SCHEME_BIT = 2;
const AUTHORITY_BIT = 4;
const PATH_BIT = 8;

/** The bit of a request pseudo-header name, or 0 for a name that is not one. */
function requestPseudoBit(name: string): number {
  switch (name) {
    case ':method':
      return METHOD_BIT;
    case ':scheme':
      return SCHEME_BIT;
    case ':authority':
      return AUTHORITY_BIT;
    case ':path':
      return PATH_BIT;
    default:
      return 0;
  }
}

/**
 * 1 for each char code allowed in a regular field name (RFC 9113 8.2.1): lowercase visible ASCII
 * other than ':', that is 0x21-0x7e without 0x3a and 'A'-'Z' (0x41-0x5a). One load per char.
 */
const NAME_CHAR_OK = new Uint8Array(128);
for (let c = 0x21; c < 0x7f; c++) NAME_CHAR_OK[c] = c === 0x3a || (c >= 0x41 && c <= 0x5a) ? 0 : 1;

/**
 * Connection-specific fields (RFC 9113 8.2.2): HTTP/2 has no use for them. `te` is allowed only as
 * "trailers" and checked on its own.
 */
const CONNECTION_SPECIFIC = new Set(['connection', 'proxy-connection', 'keep-alive', 'transfer-encoding', 'upgrade']);

/** Lengths of the CONNECTION_SPECIFIC names: most fields skip the set lookup (and hashing a fresh string). */
function mayBeConnectionSpecific(length: number): boolean {
  return length === 7 || length === 10 || length === 16 || length === 17;
}

/**
 * A regular field name may hold only lowercase visible ASCII other than ':' (RFC 9113 8.2.1): none
 * of 0x00-0x20, 0x41-0x5a ('A'-'Z'), 0x7f-0xff or 0x3a. (Pseudo-header names are checked against
 * the few that exist.)
 */
function nameProblem(name: string): string | undefined {
  if (name.length === 0) return 'an empty field name';
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 0x80 || NAME_CHAR_OK[c] === 0) {
      return `field name ${JSON.stringify(name)}: only lowercase visible ASCII is allowed (RFC 9113 8.2.1)`;
    }
  }
  return undefined;
}

/** A field value may not hold NUL, LF or CR (RFC 9113 8.2.1). */
function valueProblem(name: string, value: string): string | undefined {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c <= 0x0d && (c === 0x00 || c === 0x0a || c === 0x0d)) return `field ${name}: its value holds NUL, CR or LF, which are not allowed (RFC 9113 8.2.1)`;
  }
  return undefined;
}

/**
 * What one field may hold, wherever it appears: a pseudo-header's value (its name is judged in
 * context), or a regular field's name and value (RFC 9113 8.2.1-8.2.2). The HPACK decoder calls
 * this once per table entry.
 */
export function fieldProblem(name: string, value: string): string | undefined {
  return name.charCodeAt(0) === 0x3a ? valueProblem(name, value) : regularFieldProblem(name, value);
}

/** Problems shared by every regular (non-pseudo) field of requests, responses and trailers. */
function regularFieldProblem(name: string, value: string): string | undefined {
  const problem = nameProblem(name) ?? valueProblem(name, value);
  if (problem !== undefined) return problem;
  if (mayBeConnectionSpecific(name.length) && CONNECTION_SPECIFIC.has(name)) return `connection-specific field "${name}" is not allowed in HTTP/2 (RFC 9113 8.2.2)`;
  if (name === 'te' && value !== 'trailers') return `field te: "${value}" is not allowed; allowed: "trailers" (RFC 9113 8.2.2)`;
  return undefined;
}

/** A request's header fields (RFC 9113 8.3.1). */
export function requestProblem(fields: readonly string[], unchecked?: readonly number[]): string | undefined {
  let seen = 0;
  let sawRegular = false;
  let isConnect = false;
  let nextUnchecked = 0;
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i]!;
    const value = fields[i + 1]!;
    let mustCheck = true;
    if (unchecked !== undefined) {
      mustCheck = nextUnchecked < unchecked.length && unchecked[nextUnchecked] === i;
      if (mustCheck) nextUnchecked++;
    }
    if (name.charCodeAt(0) === 0x3a) {
      const bit = requestPseudoBit(name);
      if (bit === 0) return `pseudo-header ${JSON.stringify(name)} is not allowed in a request; allowed: :method, :scheme, :authority, :path`;
      if (sawRegular) return `pseudo-header ${name} after a regular field; pseudo-headers come first (RFC 9113 8.3)`;
      if ((seen & bit) !== 0) return `pseudo-header ${name} given twice; each may appear once (RFC 9113 8.3)`;
      seen |= bit;
      if (mustCheck) {
        const problem = valueProblem(name, value);
        if (problem !== undefined) return problem;
      }
      if (bit === METHOD_BIT) isConnect = value === 'CONNECT';
      else if (bit === PATH_BIT && value === '') return 'pseudo-header :path is empty; it must hold a path (RFC 9113 8.3.1)';
      continue;
    }
    sawRegular = true;
    if (mustCheck) {
      const problem = regularFieldProblem(name, value);
      if (problem !== undefined) return problem;
    }
  }
  if ((seen & METHOD_BIT) === 0) return 'pseudo-header :method is missing (RFC 9113 8.3.1)';
  if (isConnect) {
    if ((seen & AUTHORITY_BIT) === 0) return 'a CONNECT request without :authority (RFC 9113 8.5)';
    if ((seen & (SCHEME_BIT | PATH_BIT)) !== 0) return 'a CONNECT request with :scheme or :path; it carries only :method and :authority (RFC 9113 8.5)';
    return undefined;
  }
  if ((seen & SCHEME_BIT) === 0) return 'pseudo-header :scheme is missing (RFC 9113 8.3.1)';
  if ((seen & PATH_BIT) === 0) return 'pseudo-header :path is missing (RFC 9113 8.3.1)';
  return undefined;
}

/** Three digits, the first 1-5: what :status may hold (RFC 9110 15). */
function isStatusCode(value: string): boolean {
  if (value.length !== 3) return false;
  const first = value.charCodeAt(0);
  const second = value.charCodeAt(1);
  const third = value.charCodeAt(2);
  return first >= 0x31 && first <= 0x35 && second >= 0x30 && second <= 0x39 && third >= 0x30 && third <= 0x39;
}

/** A response's header fields, interim (1xx) or final (RFC 9113 8.3.2). */
export function responseProblem(fields: readonly string[], unchecked?: readonly number[]): string | undefined {
  let sawStatus = false;
  let nextUnchecked = 0;
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i]!;
    const value = fields[i + 1]!;
    let mustCheck = true;
    if (unchecked !== undefined) {
      mustCheck = nextUnchecked < unchecked.length && unchecked[nextUnchecked] === i;
      if (mustCheck) nextUnchecked++;
    }
    if (name.charCodeAt(0) === 0x3a) {
      if (name !== ':status') return `pseudo-header ${JSON.stringify(name)} is not allowed in a response; allowed: :status`;
      if (i !== 0) return 'pseudo-header :status after another field; it comes first (RFC 9113 8.3)';
      if (sawStatus) return 'pseudo-header :status given twice (RFC 9113 8.3)';
      sawStatus = true;
      if (!isStatusCode(value)) return `:status "${value}" is not valid; allowed: a three-digit status code 100-599`;
      continue;
    }
    if (!mustCheck) continue;
    const problem = regularFieldProblem(name, value);
    if (problem !== undefined) return problem;
  }
  return sawStatus ? undefined : 'pseudo-header :status is missing (RFC 9113 8.3.2)';
}

/** Trailers of a request or response: regular fields only (RFC 9113 8.1). */
export function trailersProblem(fields: readonly string[], unchecked?: readonly number[]): string | undefined {
  let nextUnchecked = 0;
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i]!;
    let mustCheck = true;
    if (unchecked !== undefined) {
      mustCheck = nextUnchecked < unchecked.length && unchecked[nextUnchecked] === i;
      if (mustCheck) nextUnchecked++;
    }
    if (name.charCodeAt(0) === 0x3a) return `pseudo-header ${name} in trailers; trailers carry regular fields only (RFC 9113 8.1)`;
    if (!mustCheck) continue;
    const problem = regularFieldProblem(name, fields[i + 1]!);
    if (problem !== undefined) return problem;
  }
  return undefined;
}
