/** Ferry's version, from the package.json above this file (in a checkout, or compiled into dist/). */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

export function packageVersion(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (existsSync(file)) return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
    if (path.dirname(dir) === dir) return 'unknown';
  }
}
