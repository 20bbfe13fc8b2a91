/**
 * Command modules beyond the pipeline commands of main.ts: one file per command group (service, stack, node,
 * network, swarm, env, raft). Each exports a yargs CommandModule built on command-kit's `run`.
 */
import type { CommandModule } from 'yargs';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const commands: CommandModule<any, any>[] = [];
