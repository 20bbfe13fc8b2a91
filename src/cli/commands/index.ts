/**
 * Command modules beyond the pipeline commands of main.ts: one file per command group (service, stack, node,
 * network, swarm, env, raft). Each exports a yargs CommandModule built on command-kit's `run`.
 */
import type { CommandModule } from 'yargs';
import { envCommand } from './env.js';
import { labCommand } from './lab.js';
import { networkCommand } from './network.js';
import { nodeCommand } from './node.js';
import { raftCommand } from './raft.js';
import { serviceCommand } from './service.js';
import { stackCommand } from './stack.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const commands: CommandModule<any, any>[] = [serviceCommand, nodeCommand, networkCommand, envCommand, raftCommand, stackCommand, labCommand];
