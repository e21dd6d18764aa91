/**
 * Measures how long `ferry --help` takes to start and print, as installed (compiled dist/), and
 * the same command run from the TypeScript sources through tsx for comparison. Prints each
 * median with its spread and a JSON line (npm run startup -- --runs 15).
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { parseArgs } from 'node:util';

const root = path.join(__dirname, '..');

function timeRuns(command: string, args: string[], runs: number): number[] {
  const times: number[] = [];
  for (let i = 0; i < runs; i += 1) {
    const started = process.hrtime.bigint();
    const result = spawnSync(command, args, { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
    if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} exited ${result.status}: ${result.stderr.toString()}`);
    times.push(Number(process.hrtime.bigint() - started) / 1e9);
  }
  return times.sort((a, b) => a - b);
}

const median = (sorted: number[]) => sorted[Math.floor(sorted.length / 2)]!;

function main(): void {
  const { values } = parseArgs({ options: { runs: { type: 'string', default: '11' } } });
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs must be a positive whole number, not "${values.runs}"`);
  const compiled = timeRuns(process.execPath, [path.join(root, 'bin', 'ferry.js'), '--help'], runs);
  const fromSource = timeRuns(process.execPath, [require.resolve('tsx/cli'), path.join(root, 'cli', 'main.ts'), '--help'], runs);
  for (const [name, times] of [['ferry --help (compiled)', compiled], ['ferry --help (sources through tsx)', fromSource]] as const) {
    console.log(`${name.padEnd(36)} median ${median(times).toFixed(3)} s (${times[0]!.toFixed(3)} to ${times.at(-1)!.toFixed(3)} s, ${runs} runs)`);
  }
  console.log(JSON.stringify({ runs, compiledMedianSeconds: median(compiled), sourceMedianSeconds: median(fromSource), ratio: median(compiled) / median(fromSource) }));
}

main();
