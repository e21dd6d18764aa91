/**
 * What the image and compose file promise, read from the files (no container engine runs here):
 * a non-root worker on the current Node LTS with CA certificates, and Temporal's current images.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';

const root = path.join(__dirname, '..', '..');
const read = (file: string) => readFileSync(path.join(root, file), 'utf8');

describe('the image', () => {
  const dockerfile = read('Dockerfile');
  const stages = dockerfile.split(/^FROM /m).slice(1);

  it('builds in one stage and runs in another, on Node 22, as the node user, with CA certificates', () => {
    expect(stages).toHaveLength(2);
    for (const stage of stages) expect(stage).toMatch(/^node:22-/);
    const runtime = stages[1]!;
    expect(runtime).toMatch(/^USER node$/m);
    expect(runtime).toContain('ca-certificates');
    expect(runtime).not.toMatch(/COPY \. /);
    expect(runtime).toContain('/ferry/dist');
  });
});

describe('docker-compose.yml', () => {
  const compose = parse(read('docker-compose.yml')) as { services: Record<string, { image?: string; build?: unknown; command?: unknown; depends_on?: Record<string, unknown> }> };

  it("runs Temporal on its current server and admin-tools images, not the deprecated auto-setup", () => {
    const images = Object.values(compose.services).map((s) => s.image ?? '');
    expect(images.some((image) => image.startsWith('temporalio/auto-setup'))).toBe(false);
    expect(compose.services.temporal?.image).toMatch(/^temporalio\/server:/);
    expect(compose.services['temporal-schema']?.image).toMatch(/^temporalio\/admin-tools:/);
  });

  it("registers Ferry's search attributes with ferry setup before the worker starts", () => {
    expect(compose.services['ferry-setup']?.command).toEqual(['setup']);
    expect(compose.services.worker?.depends_on).toHaveProperty('ferry-setup');
  });
});
