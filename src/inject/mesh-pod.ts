import type { V1Pod } from '@kubernetes/client-node';
import { ANNOTATION, STATUS_INJECTED } from '../common/contract.js';
import { buildInitContainer, buildProxyContainer, buildTokenVolume, buildXtablesLockVolume, type ProxySettings } from './sidecar.js';

/**
 * Returns a meshed copy of the Pod (the input is not changed).
 *
 * Native sidecar: initContainers = [meshlet-init, meshlet-proxy, ...the Pod's own], so the app's own
 * init containers already talk through a running proxy. Otherwise the proxy is the first regular
 * container and meshlet-init runs last among the init containers, so the Pod's own init containers
 * are not redirected to a proxy that is not running yet.
 */
export function meshPod(pod: V1Pod, settings: ProxySettings, version: string): V1Pod {
  // Only what changes is copied; the rest is shared with the input, which is never modified.
  const spec = { ...pod.spec! };
  const meshed: V1Pod = {
    ...pod,
    metadata: { ...pod.metadata, annotations: { ...pod.metadata?.annotations, [ANNOTATION.status]: STATUS_INJECTED, [ANNOTATION.version]: version } },
    spec,
  };
  const init = buildInitContainer(settings);
  const proxy = buildProxyContainer(settings);
  const ownInit = spec.initContainers ?? [];
  if (settings.nativeSidecar) {
    spec.initContainers = [init, proxy, ...ownInit];
  } else {
    spec.initContainers = [...ownInit, init];
    spec.containers = [proxy, ...spec.containers];
  }
  spec.volumes = [...(spec.volumes ?? []), buildTokenVolume(settings), buildXtablesLockVolume()];
  return meshed;
}
