import { describe, expect, it } from 'vitest';
import { convertedColumnsOf, copyFormatOf } from '../../activities/copy/copy-format';

const INT8 = 20;
const TEXT = 25;
const INT4 = 23;
const AN_ENUM = 16_500;

describe('copyFormatOf', () => {
  const target = (types: Record<string, number>, major = 15) => ({ major, types: new Map(Object.entries(types)) });

  it('is binary when every column is the same built-in type on both sides of one major version', () => {
    expect(copyFormatOf(['id', 'name'], { source: { major: 15, types: [INT8, TEXT] }, target: target({ id: INT8, name: TEXT }) })).toBe('binary');
  });

  it('is text when a column would be converted, is of a type of the database, or is missing', () => {
    expect(copyFormatOf(['id', 'n'], { source: { major: 15, types: [INT8, INT8] }, target: target({ id: INT8, n: INT4 }) })).toBe('text');
    expect(copyFormatOf(['id', 'mood'], { source: { major: 15, types: [INT8, AN_ENUM] }, target: target({ id: INT8, mood: AN_ENUM }) })).toBe('text');
    expect(copyFormatOf(['id', 'gone'], { source: { major: 15, types: [INT8, TEXT] }, target: target({ id: INT8 }) })).toBe('text');
    expect(copyFormatOf(['id', 'name'], { source: { major: 15, types: [INT8] }, target: target({ id: INT8, name: TEXT }) })).toBe('text');
  });

  it('is text between servers of different major versions', () => {
    expect(copyFormatOf(['id'], { source: { major: 16, types: [INT8] }, target: target({ id: INT8 }, 15) })).toBe('text');
  });

  it('names the columns the copy converts: another type on the target, or a type of the database, whatever the format', () => {
    const types = { source: { major: 16, types: [INT8, INT8, AN_ENUM, TEXT] }, target: target({ id: INT8, n: INT4, mood: AN_ENUM, name: TEXT }, 15) };
    expect(convertedColumnsOf(['id', 'n', 'mood', 'name'], types)).toEqual([
      { name: 'n', sourceType: INT8 },
      { name: 'mood', sourceType: AN_ENUM },
    ]);
  });
});
