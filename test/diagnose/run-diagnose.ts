import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectCluster } from '../../src/diagnose/cluster.js';
import { diagnoseService } from '../../src/diagnose/diagnose.js';
import { formatDiagnosis } from '../../src/diagnose/report.js';
import { runMeshlet, type MeshletRun } from '../../tools/meshlet-process.js';
import type { DiagnoseCluster } from './cluster-fixture.js';

/** The text report, in-process: the same client library against the same replay server. */
export async function textReport(cluster: DiagnoseCluster): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-diagnose-'));
  try {
    const reader = connectCluster(await cluster.api.writeKubeconfig(dir));
    return formatDiagnosis(await diagnoseService(reader, { namespace: 'demo', service: 'web', clientNamespaces: ['demo'], windowMs: 1500, scrapeTimeoutMs: 5000 }));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Runs the real CLI: `meshlet diagnose web -n demo --kubeconfig FILE --window 1500ms [...]`. */
export async function runDiagnose(cluster: DiagnoseCluster, extra: string[] = []): Promise<MeshletRun> {
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-diagnose-'));
  try {
    const kubeconfig = await cluster.api.writeKubeconfig(dir);
    return await runMeshlet(['diagnose', 'web', '-n', 'demo', '--kubeconfig', kubeconfig, '--window', '1500ms', ...extra]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export interface JsonDiagnosis {
  verdict: string;
  summary: string;
  exitCode: number;
  endpoints: { ready: number; notReady: number; terminating: number; slices: number };
  clients: { meshed: string[]; scraped: string[]; callers: string[]; missingSidecar: { pod: string; fix: string }[] };
  analysis: { cv: number; totalRequests: number; endpoints: { pod?: string; share: number; requests: number }[] };
}

