/**
 * A temporal.toml the CLI cannot parse: the error says where, as bad input, and never shows the
 * file's text, where an API key sits beside the mistake.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { ExitCode } from '../../cli/exit-codes';
import { ferry } from '../support/cli';
import { uniqueName } from '../support/harness';

const API_KEY = 'tok_live_9f8e7d6c5b4a-NEVER-PRINTED';

/** Mistakes on the line after the key: the parser's message quotes the lines around them. */
const BROKEN = {
  'an unterminated string': `namespace = "default\n`,
  'a value with no quotes': `namespace = default\n`,
  'a key with no value': `namespace =\n`,
};

describe('a temporal.toml that does not parse', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-temporal-profile-'));

  it.each(Object.entries(BROKEN))('names the line and column of %s, and never prints the API key beside it', async (name, mistake) => {
    const file = path.join(dir, `${name.replace(/\W/g, '-')}.toml`);
    writeFileSync(file, `[profile.default]\naddress = "localhost:7233"\napi_key = "${API_KEY}"\n${mistake}`);
    const temporal = { address: inject('temporalAddress'), namespace: 'default', taskQueue: uniqueName('profile') };
    const result = await ferry(['list'], temporal, { TEMPORAL_CONFIG_FILE: file, TEMPORAL_ADDRESS: '' });
    expect(result.code, result.stderr).toBe(ExitCode.badInput);
    expect(result.stdout + result.stderr).not.toContain(API_KEY);
    expect(result.stdout + result.stderr).not.toContain('tok_live');
    expect(result.stderr).toMatch(/is not valid TOML at line 4, column \d+/);
  });
});
