/** Turns an inventory service into an Engine API ServiceSpec, with a hash label so unchanged specs are not updated. */
import { createHash } from 'node:crypto';
import type { ServiceSpec } from '../inventory/types.js';

export const CLUSTER_LABEL = 'swarmform.cluster';
export const SPEC_HASH_LABEL = 'swarmform.spec-hash';

/** The Engine API spec (no version); `cluster` labels it as ours. */
export function toEngineSpec(s: ServiceSpec, cluster: string): Record<string, unknown> {
  const body = {
    Name: s.name,
    TaskTemplate: {
      ContainerSpec: {
        Image: s.image,
        ...(s.command ? { Command: s.command } : {}),
        ...(s.args ? { Args: s.args } : {}),
        Env: Object.entries(s.env).map(([k, v]) => `${k}=${v}`),
      },
      Placement: { Constraints: s.constraints },
      RestartPolicy: { Condition: 'any', Delay: 2_000_000_000 },
    },
    Mode: s.mode === 'global' ? { Global: {} } : { Replicated: { Replicas: s.replicas } },
    EndpointSpec: {
      Ports: s.ports.map((p) => ({ Protocol: p.protocol, TargetPort: p.target, PublishedPort: p.published, PublishMode: p.mode })),
    },
  };
  const hash = createHash('sha256').update(JSON.stringify(body)).digest('hex').slice(0, 16);
  return { ...body, Labels: { ...s.labels, [CLUSTER_LABEL]: cluster, [SPEC_HASH_LABEL]: hash } };
}
