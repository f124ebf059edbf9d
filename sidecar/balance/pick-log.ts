import { COST_TIE_FRACTION } from './peak-ewma.js';

/** The parts of a weighted pick's winner, as the policy weighed it. */
export interface WeightParts {
  latencyMs: number;
  latencyFactor: number;
  failureFactor: number;
  ramp: number;
  inFlight: number;
}

/** One remembered pick: the candidates compared, their costs, and the winner. */
export interface PickRecord {
  at: number;
  policy: string;
  chosen: string;
  /** The second candidate (power of two choices); undefined for single-candidate and weighted policies. */
  other: string | undefined;
  chosenCost: number;
  otherCost: number;
  /** What the cost measures, e.g. "in-flight" or "credit". */
  costName: string;
  /** Weighted picks: the winner's weight, the total over all candidates, and the parts of its weight. */
  weight: number;
  totalWeight: number;
  /** Weighted picks: the winner was a lighter endpoint whose credit reached a whole pick (else: lowest cost). */
  isDue: boolean;
  /** Weighted picks: the lowest (in flight + 1) / weight among the candidates. */
  lowestCost: number;
  parts: WeightParts;
}

/** How many picks the debug view shows per target. */
export const PICK_LOG_SIZE = 16;

/**
 * The last picks of one target in a fixed ring of preallocated records: recording a pick writes
 * fields and allocates nothing (the weighted record copies the parts into the ring's own object);
 * the explanation is built only when the debug view asks.
 */
export class PickLog {
  private readonly records: PickRecord[] = [];
  private next = 0;
  private count = 0;

  constructor(private readonly size = PICK_LOG_SIZE) {
    for (let i = 0; i < size; i++) {
      this.records.push({
        at: 0,
        policy: '',
        chosen: '',
        other: undefined,
        chosenCost: 0,
        otherCost: 0,
        costName: '',
        weight: 0,
        totalWeight: 0,
        isDue: false,
        lowestCost: 0,
        parts: { latencyMs: 0, latencyFactor: 1, failureFactor: 1, ramp: 1, inFlight: 0 },
      });
    }
  }

  record(policy: string, costName: string, chosen: string, chosenCost: number, other: string | undefined, otherCost: number): void {
    const r = this.advance();
    r.policy = policy;
    r.costName = costName;
    r.chosen = chosen;
    r.chosenCost = chosenCost;
    r.other = other;
    r.otherCost = otherCost;
    r.weight = 0;
    r.totalWeight = 0;
  }

  /** A weighted pick: `chosen` was due by credit (`isDue`), or had the most credit among the lowest costs. */
  recordWeighted(policy: string, chosen: string, isDue: boolean, credit: number, weight: number, totalWeight: number, lowestCost: number, parts: WeightParts): void {
    const r = this.advance();
    r.policy = policy;
    r.costName = 'credit';
    r.chosen = chosen;
    r.chosenCost = credit;
    r.other = undefined;
    r.otherCost = 0;
    r.weight = weight;
    r.totalWeight = totalWeight;
    r.isDue = isDue;
    r.lowestCost = lowestCost;
    const p = r.parts;
    p.latencyMs = parts.latencyMs;
    p.latencyFactor = parts.latencyFactor;
    p.failureFactor = parts.failureFactor;
    p.ramp = parts.ramp;
    p.inFlight = parts.inFlight;
  }

  /** Newest first, each with a sentence saying why the winner won. */
  recent(): Array<PickRecord & { why: string; candidates: string[] }> {
    const out: Array<PickRecord & { why: string; candidates: string[] }> = [];
    for (let i = 1; i <= this.count; i++) {
      const r = this.records[(this.next - i + this.size) % this.size]!;
      out.push({ ...r, parts: { ...r.parts }, candidates: r.other === undefined ? [r.chosen] : [r.chosen, r.other], why: explain(r) });
    }
    return out;
  }

  private advance(): PickRecord {
    const r = this.records[this.next]!;
    r.at = Date.now();
    this.next = (this.next + 1) % this.size;
    if (this.count < this.size) this.count++;
    return r;
  }
}

function explain(r: PickRecord): string {
  if (r.totalWeight > 0) {
    const p = r.parts;
    const cost = (p.inFlight + 1) / r.weight;
    const reason = r.isDue
      ? `its turn by weight (credit ${round(r.chosenCost)} reached a whole pick, ${round(r.totalWeight)})`
      : `lowest cost, (in flight ${p.inFlight} + 1) / weight = ${round(cost)}${cost > r.lowestCost ? ` (within ${COST_TIE_FRACTION * 100}% of the lowest, ${round(r.lowestCost)})` : ''}, most credit among those (${round(r.chosenCost)})`;
    return (
      `${r.policy}: ${reason}; weight ${round(r.weight)} of ${round(r.totalWeight)} = ` +
      (p.ramp < 1 ? `slow-start ramp ${round(p.ramp)} (in place of latency ×${round(p.latencyFactor)}, ${round(p.latencyMs)} ms)` : `latency ×${round(p.latencyFactor)} (${round(p.latencyMs)} ms)`) +
      ` / failures ×${round(p.failureFactor)}`
    );
  }
  if (r.other === undefined) return `${r.policy}: next in turn`;
  const rel = r.chosenCost < r.otherCost ? 'lower' : 'equal';
  return `${r.policy}: ${rel} ${r.costName} (${round(r.chosenCost)} vs ${round(r.otherCost)} for ${r.other})`;
}

function round(n: number): number {
  return Math.round(n * 1000) / 1000;
}
