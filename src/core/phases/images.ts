/** images: the providers' base images and the inventory's tarballs, loaded where missing, all hosts in parallel. */
import { fanout } from '../../run/fanout.js';
import { ensureImages, imageTags } from '../../swarm/images.js';
import { reaches, type UpPhaseStep, type UpRun } from './phase.js';

const specsOf = (run: UpRun) => [...run.prepared.images, ...run.ctx.inventory.images];

export const imagesPhase: UpPhaseStep = {
  name: 'images',
  title: 'load the images the hosts miss',
  shouldRun: (run) => reaches(run.opts, 'bootstrap') && specsOf(run).length > 0 && run.ready.length > 0,
  total: (run) => run.ready.length,
  run: async (run) => {
    const { ctx, sessions, result } = run;
    const withTags = await Promise.all(specsOf(run).map(async (spec) => ({ spec, tags: await imageTags(spec) })));
    const r = await fanout(
      run.ready,
      async (m) => {
        const loaded = await ensureImages(sessions.get(m.name)!, withTags);
        if (loaded.length === 0) return { skipped: true as const, message: 'all images present' };
        result.changes.images++;
        return `loaded ${loaded.join(', ')}`;
      },
      { phase: 'images', step: 'load images', key: (m) => m.name, concurrency: 16, events: ctx.events, signal: ctx.signal },
    );
    for (const f of r.failed) run.fail(f.item.name, 'images', f.error);
  },
  dryRun: () => undefined,
};
