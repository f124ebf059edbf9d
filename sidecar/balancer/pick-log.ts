/** One remembered pick: the candidates compared, their costs, and the winner. */
export interface PickRecord {
  at: number;
  policy: string;
  chosen: string;
  /** The second candidate (power of two choices); undefined for single-candidate policies. */
  other: string | undefined;
  chosenCost: number;
  otherCost: number;
  /** What the cost measures, e.g. "in-flight" or "latency-ms x (in-flight+1)". */
  costName: string;
}

/** How many picks the debug view shows per target. */
export const PICK_LOG_SIZE = 16;

/**
 * The last picks of one target in a fixed ring of preallocated records: recording a pick writes
 * fields and allocates nothing; the explanation is built only when the debug view asks.
 */
export class PickLog {
  private readonly records: PickRecord[] = [];
  private next = 0;
  private count = 0;

  constructor(private readonly size = PICK_LOG_SIZE) {
    for (let i = 0; i < size; i++) {
      this.records.push({ at: 0, policy: '', chosen: '', other: undefined, chosenCost: 0, otherCost: 0, costName: '' });
    }
  }

  record(policy: string, costName: string, chosen: string, chosenCost: number, other: string | undefined, otherCost: number): void {
    const r = this.records[this.next]!;
    r.at = Date.now();
    r.policy = policy;
    r.costName = costName;
    r.chosen = chosen;
    r.chosenCost = chosenCost;
    r.other = other;
    r.otherCost = otherCost;
    this.next = (this.next + 1) % this.size;
    if (this.count < this.size) this.count++;
  }

  /** Newest first, each with a sentence saying why the winner won. */
  recent(): Array<PickRecord & { why: string; candidates: string[] }> {
    const out: Array<PickRecord & { why: string; candidates: string[] }> = [];
    for (let i = 1; i <= this.count; i++) {
      const r = this.records[(this.next - i + this.size) % this.size]!;
      out.push({ ...r, candidates: r.other === undefined ? [r.chosen] : [r.chosen, r.other], why: explain(r) });
    }
    return out;
  }
}

function explain(r: PickRecord): string {
  if (r.other === undefined) return `${r.policy}: next in turn`;
  const rel = r.chosenCost < r.otherCost ? 'lower' : 'equal';
  return `${r.policy}: ${rel} ${r.costName} (${round(r.chosenCost)} vs ${round(r.otherCost)} for ${r.other})`;
}

function round(n: number): number {
  return Math.round(n * 1000) / 1000;
}
