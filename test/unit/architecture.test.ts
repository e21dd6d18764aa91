/**
 * The shape of the code, checked from its imports: no import circle between modules, the arrows
 * between layers point down (nothing below the CLI and the worker imports them), and the
 * workflow and activity modules stay short enough to read whole.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = path.join(__dirname, '..', '..');
const PRODUCT_DIRS = ['workflows', 'activities', 'lib', 'workers', 'operator', 'cli', 'client'];
/** Folders below the CLI and the worker process: they never import cli/ or workers/. */
const LOWER_DIRS = ['workflows', 'activities', 'lib', 'operator'];
const MAX_LINES = 350;

function sourceFiles(dir: string): string[] {
  const files: string[] = [];
  for (const entry of readdirSync(path.join(root, dir), { withFileTypes: true })) {
    const relative = path.posix.join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== 'node_modules' && entry.name !== 'dist') files.push(...sourceFiles(relative));
    } else if (/\.m?ts$/.test(entry.name) && !entry.name.endsWith('.d.ts')) {
      files.push(relative);
    }
  }
  return files;
}

/** Every module specifier a file names: imports, re-exports, `import type`, import() and require() of a literal. */
function specifiersOf(file: string): string[] {
  const source = ts.createSourceFile(file, readFileSync(path.join(root, file), 'utf8'), ts.ScriptTarget.Latest, true);
  const found: string[] = [];
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      found.push(node.moduleSpecifier.text);
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference) && ts.isStringLiteral(node.moduleReference.expression)) {
      found.push(node.moduleReference.expression.text);
    } else if (ts.isCallExpression(node) && node.arguments.length === 1 && ts.isStringLiteral(node.arguments[0]!)) {
      const callee = node.expression;
      if (callee.kind === ts.SyntaxKind.ImportKeyword || (ts.isIdentifier(callee) && callee.text === 'require')) found.push(node.arguments[0].text);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      found.push(node.argument.literal.text);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** The product file a relative specifier names, or null for a package or a file outside the product. */
function resolve(from: string, specifier: string): string | null {
  if (!specifier.startsWith('.')) return null;
  const base = path.posix.normalize(path.posix.join(path.posix.dirname(from), specifier));
  for (const candidate of [`${base}.ts`, `${base}.mts`, path.posix.join(base, 'index.ts'), base]) {
    const full = path.join(root, candidate);
    if (existsSync(full) && statSync(full).isFile()) return candidate;
  }
  return null;
}

const files = PRODUCT_DIRS.flatMap(sourceFiles);
const graph = new Map(files.map((file) => [file, [...new Set(specifiersOf(file).map((s) => resolve(file, s)).filter((f): f is string => f !== null))]]));
const topDir = (file: string) => file.split('/')[0]!;

/** Each circle of imports (a strongly connected component of more than one module, or a module importing itself). */
function importCircles(): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const circles: string[][] = [];
  let next = 0;
  const connect = (file: string): void => {
    index.set(file, next);
    low.set(file, next++);
    stack.push(file);
    onStack.add(file);
    for (const target of graph.get(file) ?? []) {
      if (!index.has(target)) {
        connect(target);
        low.set(file, Math.min(low.get(file)!, low.get(target)!));
      } else if (onStack.has(target)) {
        low.set(file, Math.min(low.get(file)!, index.get(target)!));
      }
    }
    if (low.get(file) !== index.get(file)) return;
    const component: string[] = [];
    let member: string;
    do {
      member = stack.pop()!;
      onStack.delete(member);
      component.push(member);
    } while (member !== file);
    if (component.length > 1 || graph.get(file)?.includes(file)) circles.push(component.sort());
  };
  for (const file of graph.keys()) if (!index.has(file)) connect(file);
  return circles;
}

describe('architecture', () => {
  it('reads the imports of the product code', () => {
    expect(files).toContain('activities/index.ts');
    expect(graph.get('workers/worker.ts')).toContain('activities/index.ts');
  });

  it('has no import circle among workflows/, activities/, lib/, workers/, operator/, cli/ and client/ (type-only imports included)', () => {
    expect(importCircles()).toEqual([]);
  });

  it('has nothing in workflows/, activities/, lib/ or operator/ import from cli/ or workers/', () => {
    const upward = [...graph].flatMap(([file, targets]) =>
      LOWER_DIRS.includes(topDir(file)) ? targets.filter((t) => ['cli', 'workers'].includes(topDir(t))).map((t) => `${file} -> ${t}`) : [],
    );
    expect(upward).toEqual([]);
  });

  it(`keeps every file in workflows/ and activities/ within ${MAX_LINES} lines`, () => {
    const long = files
      .filter((file) => ['workflows', 'activities'].includes(topDir(file)))
      .map((file) => ({ file, lines: readFileSync(path.join(root, file), 'utf8').split('\n').length - 1 }))
      .filter(({ lines }) => lines > MAX_LINES);
    expect(long).toEqual([]);
  });
});
