import { describe, expect, it } from 'vitest';
import { actingIdentity, deciderProblems, recordedName } from '../../lib/approvals';
import {
  nameProblems,
  parseAbortRequest,
  parseApproval,
  parseMigrationInput,
  parseOperatorNote,
  parseShardPause,
  parseShardProgress,
  parseShardThrottle,
  parseThrottleChange,
  parseVerifyRequest,
} from '../../lib/messages-input';
import { lapseOf, refusalOf, type ServingState } from '../../lib/requests';

const bad = [undefined, null, 7, 'pause', [1, 2], { by: 42 }, { by: 'alice', colour: 'vermilion' }];

describe('message payloads', () => {
  it('read a missing or empty note as a plain request, and refuse every other shape without quoting it', () => {
    expect(parseOperatorNote(undefined)).toEqual({ ok: true, value: {} });
    expect(parseOperatorNote(null)).toEqual({ ok: true, value: {} });
    expect(parseOperatorNote({ by: 'alice', reason: 'lunch' })).toEqual({ ok: true, value: { by: 'alice', reason: 'lunch' } });
    expect(parseOperatorNote(7)).toEqual({ ok: false, problems: ['the payload must be an object { by?, reason? }, not a number'] });
    expect(parseOperatorNote('secret-value')).toEqual({ ok: false, problems: ['the payload must be an object { by?, reason? }, not a string'] });
    expect(parseOperatorNote([1])).toEqual({ ok: false, problems: ['the payload must be an object { by?, reason? }, not a list'] });
    expect(parseOperatorNote({ by: 42 })).toEqual({ ok: false, problems: ['by must be text, not a number'] });
    expect(parseOperatorNote({ by: 'a', colour: 'red' })).toEqual({ ok: false, problems: ['colour is not a known field'] });
  });

  it('refuse a name with control characters, which could show as someone else\'s', () => {
    for (const by of ['carol\x1b[8m (as mallory)', 'mallory\rcarol', 'a\nb', 'x\u009b2J', 'nul\u0000', 'alice\u202e', 'ali\u200bce', 'bob\u2028carol']) {
      expect(nameProblems({ by, gate: 'cutover-reads' }), JSON.stringify(by)).toEqual(['by must not contain control characters (a terminal escape, a carriage return, a newline, an invisible or direction-changing character)']);
    }
    expect(nameProblems({ by: 'Zoë O\'Brien (as zoe@laptop)' })).toEqual([]);
    expect(nameProblems({ reason: 'line one\nline two' })).toEqual([]);
  });

  it('refuse every bad shape of a decision, naming each problem', () => {
    for (const payload of bad) {
      for (const parse of [parseApproval, parseAbortRequest, parseThrottleChange, parseShardProgress, parseShardThrottle, parseShardPause]) {
        const parsed = parse(payload);
        expect(parsed.ok, `${parse.name}(${JSON.stringify(payload)})`).toBe(false);
        if (!parsed.ok) for (const problem of parsed.problems) expect(problem).not.toContain('vermilion');
      }
    }
    expect(parseApproval({ gate: 'cleanup', by: ' ', force: 'yes' })).toEqual({ ok: false, problems: ['by is empty: the approver is missing', 'force must be true or false, not a string'] });
    expect(parseAbortRequest({ by: 'alice' })).toEqual({ ok: false, problems: ['reason is required'] });
    expect(parseVerifyRequest({ samplePercent: 0 })).toEqual({ ok: false, problems: ['samplePercent must be above 0'] });
    expect(parseShardPause(true)).toEqual({ ok: true, value: true });
  });

  it('check the workflow input with the plan schema, listing every problem as the CLI does', () => {
    const parsed = parseMigrationInput({
      execute: true,
      plan: {
        name: 'x',
        source: { connection: 'postgres://u:hunter2@h/db', table: 't', key: 'id' },
        target: { connection: 'DB', table: 't2' },
        transform: { sql: { id: 'id' } },
        colour: 'red',
        throttle: { batchSize: 0 },
      },
    });
    expect(parsed.ok).toBe(false);
    const text = parsed.ok ? '' : parsed.problems.join('\n');
    expect(text).toContain('invalid migration plan (3 problems)');
    expect(text).toContain('source.connection: looks like a connection string');
    expect(text).toContain('colour: is not a known setting');
    expect(text).toContain('throttle.batchSize');
    expect(text).not.toContain('hunter2');
    expect(parseMigrationInput('go')).toMatchObject({ ok: false, problems: [expect.stringContaining('not a string')] });
  });
});

describe('who may decide', () => {
  it('records a differing --by beside the identity, and checks the identity', () => {
    expect(recordedName('alice@laptop')).toBe('alice@laptop');
    expect(recordedName('alice@laptop', 'alice@laptop')).toBe('alice@laptop');
    expect(recordedName('root@db1', 'alice')).toBe('alice (as root@db1)');
    expect(actingIdentity('alice (as root@db1)')).toBe('root@db1');
    expect(actingIdentity('bob')).toBe('bob');
  });

  it('applies approvers, forcers and four eyes', () => {
    const rules = { approvers: ['alice', 'bob@ops'], forcers: ['bob@ops'], fourEyes: true };
    expect(deciderProblems('approve', 'alice@laptop', false, rules, 'carol@ops')).toEqual([]);
    expect(deciderProblems('approve', 'alice (as mallory@x)', false, rules, 'carol@ops')).toEqual([
      "mallory@x may not approve gates of this migration; the plan's lifecycle.gates.approvers are: alice, bob@ops",
    ]);
    expect(deciderProblems('approve', 'alice@laptop', true, rules, 'carol@ops')).toEqual(['alice@laptop may not approve with --force; the plan allows it to: bob@ops']);
    expect(deciderProblems('approve', 'alice@laptop', false, rules, 'alice@laptop')[0]).toContain('started this migration and may not approve it');
    // The same person from another machine, or behind a --by name, is still the one who started it.
    for (const [approver, starter] of [
      ['alice@desktop', 'alice@laptop'],
      ['alice', 'alice@laptop'],
      ['alice@laptop', 'root (as alice@desktop)'],
    ]) {
      expect(deciderProblems('approve', approver!, false, rules, starter!)[0], `${approver} after ${starter}`).toContain('started this migration and may not approve it');
    }
    expect(deciderProblems('approve', 'alice@laptop', false, rules, 'bob@laptop')).toEqual([]);
    expect(deciderProblems('reject', 'alice@laptop', false, rules, 'alice@laptop')).toEqual([]);
    expect(deciderProblems('approve', 'anyone', true, {}, null)).toEqual([]);
  });
});

describe('which requests can be served', () => {
  const state = (over: Partial<ServingState>): ServingState => ({
    phase: 'awaiting-approval',
    execute: true,
    releasing: false,
    abortRequested: false,
    backfillDone: true,
    verificationBusy: false,
    gateWaiting: 'cutover-reads',
    gateApprovedBy: null,
    gateAhead: true,
    paused: null,
    ...over,
  });
  it('takes abort and verify only while they can be served, with a reason otherwise', () => {
    expect(refusalOf('abort', state({}))).toBeNull();
    expect(refusalOf('verify', state({}))).toBeNull();
    expect(refusalOf('abort', state({ phase: 'cleanup', releasing: true, gateWaiting: null, gateAhead: false }))).toContain('past its last step');
    expect(refusalOf('verify', state({ phase: 'cleanup', gateWaiting: null, gateAhead: false }))).toContain('no gate is left');
    expect(refusalOf('verify', state({ phase: 'backfilling', backfillDone: false, gateWaiting: null }))).toContain('backfill has not finished');
    expect(refusalOf('abort', state({ phase: 'inspecting', execute: false }))).toContain('a dry run writes nothing');
    expect(refusalOf('abort', state({ phase: 'completed' }))).toContain('is completed');
    expect(refusalOf('abort', state({ abortRequested: true }))).toContain('an abort is under way');
    expect(refusalOf('approve', state({ paused: 'by bob: replica lag' }))).toBe('the migration is paused (by bob: replica lag); resume it first (ferry resume), then approve');
    expect(refusalOf('reject', state({ paused: 'by bob: replica lag' }))).toBeNull();
    expect(refusalOf('approve', state({ paused: null }))).toBeNull();
    expect(refusalOf('approve', state({ gateWaiting: null }))).toContain('no gate is waiting');
    expect(refusalOf('verify', state({ paused: 'by bob: replica lag' }))).toBe('the migration is paused (by bob: replica lag); resume it first (ferry resume), then verify');
  });
  it('takes no approval while a verification runs at the gate, which the approval must not pass unseen; a rejection still goes', () => {
    expect(refusalOf('approve', state({ verificationBusy: true }))).toBe('a verification is running at this gate; approve once it has reported (ferry status shows it)');
    expect(refusalOf('reject', state({ verificationBusy: true }))).toBeNull();
    expect(refusalOf('abort', state({ verificationBusy: true }))).toBeNull();
  });
  it('takes nothing while the migration moves to a fresh history, which would not carry it', () => {
    for (const kind of ['abort', 'approve', 'reject', 'verify', 'throttle', 'retryFailures', 'mismatches'] as const) {
      expect(refusalOf(kind, state({ continuing: true })), kind).toBe('the migration is moving to a fresh history (continue-as-new); send the request again in a few seconds');
    }
  });
  it('takes one decision per gate: a second approval or a rejection after an approval is refused, naming who approved', () => {
    expect(refusalOf('approve', state({}))).toBeNull();
    expect(refusalOf('reject', state({}))).toBeNull();
    for (const kind of ['approve', 'reject'] as const) {
      expect(refusalOf(kind, state({ gateApprovedBy: 'alice' }))).toBe('gate cutover-reads was already approved by alice; a gate takes one decision');
    }
    expect(refusalOf('abort', state({ gateApprovedBy: 'alice' }))).toBeNull();
  });
  it('lets a verification taken to wait for a gate go, with the reason, once it can no longer run', () => {
    expect(lapseOf('verify', state({ verificationBusy: true }))).toBeNull();
    expect(lapseOf('verify', state({ abortRequested: true }))).toBe('an abort came first');
    expect(lapseOf('verify', state({ gateWaiting: null, gateAhead: false }))).toBe('the migration passed its last gate first');
  });
});
