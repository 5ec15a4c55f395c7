// packages/<name>/api.md: each package's public API — every name its src/index.ts exports, with its type — as
// the TypeScript checker sees it. `npm run docs` writes the reports; tools/docs/api-report.test.ts fails when a
// package's exports change and its report was not written again, so the surface changes only on purpose (and
// the change shows in review). api-extractor does this from built .d.ts files; the checker reads src/ directly,
// through the same "@dstack/source" condition the tests use, with no build and no per-package configuration.
import { readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** The packages whose API is recorded: every folder of packages/ (apps and test helpers are not libraries). */
export function reportedPackages(): string[] {
  return readdirSync(path.join(ROOT, 'packages'), { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort();
}

export const reportPath = (pkg: string): string => path.join(ROOT, 'packages', pkg, 'api.md');

let program: ts.Program | undefined;
/** One program over every package's index.ts (they import each other: one program checks them once). */
function sharedProgram(): ts.Program {
  if (program) return program;
  const config = ts.getParsedCommandLineOfConfigFile(path.join(ROOT, 'tsconfig.json'), {}, {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (d) => {
      throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
    },
  });
  if (!config) throw new Error('tsconfig.json cannot be read');
  const roots = reportedPackages().map((p) => path.join(ROOT, 'packages', p, 'src', 'index.ts'));
  program = ts.createProgram({ rootNames: roots, options: { ...config.options, noEmit: true } });
  return program;
}

const FLAGS =
  ts.TypeFormatFlags.NoTruncation |
  ts.TypeFormatFlags.UseSingleQuotesForStringLiteralType |
  ts.TypeFormatFlags.UseAliasDefinedOutsideCurrentScope;

function typeParams(checker: ts.TypeChecker, decl: ts.Declaration | undefined): string {
  const params = decl && 'typeParameters' in decl ? (decl as { typeParameters?: ts.NodeArray<ts.TypeParameterDeclaration> }).typeParameters : undefined;
  if (!params?.length) return '';
  return `<${params.map((p) => p.getText()).join(', ')}>`;
}

/**
 * Whether a class member is inherited from outside the project (Error's `message` and `captureStackTrace`, a
 * stream's methods): the `extends` clause names that API, the report lists the project's own members.
 */
const fromOutside = (prop: ts.Symbol): boolean =>
  (prop.declarations ?? []).some((d) => {
    const file = d.getSourceFile();
    return sharedProgram().isSourceFileDefaultLibrary(file) || file.fileName.includes('/node_modules/');
  });

/** The members of a class instance, an interface or an object type: one line each, in declaration order. */
function members(checker: ts.TypeChecker, type: ts.Type, at: ts.Node, indent: string, skipPrivate: boolean): string[] {
  const lines: string[] = [];
  for (const info of checker.getIndexInfosOfType(type)) {
    lines.push(`${indent}${info.isReadonly ? 'readonly ' : ''}[key: ${checker.typeToString(info.keyType, at, FLAGS)}]: ${checker.typeToString(info.type, at, FLAGS)};`);
  }
  for (const prop of checker.getPropertiesOfType(type)) {
    const decl = prop.valueDeclaration ?? prop.declarations?.[0];
    const modifiers = decl ? ts.getCombinedModifierFlags(decl) : ts.ModifierFlags.None;
    if (skipPrivate && (modifiers & (ts.ModifierFlags.Private | ts.ModifierFlags.Protected) || prop.name.startsWith('#'))) continue;
    if (skipPrivate && fromOutside(prop)) continue;
    const propType = checker.getTypeOfSymbolAtLocation(prop, at);
    const optional = prop.flags & ts.SymbolFlags.Optional ? '?' : '';
    const readonly = modifiers & ts.ModifierFlags.Readonly ? 'readonly ' : '';
    if (prop.flags & ts.SymbolFlags.Method) {
      for (const sig of propType.getCallSignatures()) lines.push(`${indent}${prop.name}${optional}${checker.signatureToString(sig, at, FLAGS)};`);
    } else {
      lines.push(`${indent}${readonly}${prop.name}${optional}: ${checker.typeToString(propType, at, FLAGS)};`);
    }
  }
  return lines;
}

function declarationOf(checker: ts.TypeChecker, name: string, symbol: ts.Symbol, at: ts.Node): string[] {
  const out: string[] = [];
  const decl = symbol.declarations?.[0];
  if (symbol.flags & ts.SymbolFlags.Class) {
    const classDecl = decl as ts.ClassDeclaration;
    const heritage = (classDecl.heritageClauses ?? []).map((h) => h.getText()).join(' ');
    out.push(`export ${ts.getCombinedModifierFlags(classDecl) & ts.ModifierFlags.Abstract ? 'abstract ' : ''}class ${name}${typeParams(checker, decl)}${heritage ? ` ${heritage}` : ''} {`);
    const staticType = checker.getTypeOfSymbolAtLocation(symbol, at);
    for (const sig of staticType.getConstructSignatures()) {
      const params = sig.parameters.map((p) => {
        const pd = p.valueDeclaration as ts.ParameterDeclaration | undefined;
        const optional = pd && (pd.questionToken || pd.initializer) ? '?' : '';
        return `${pd?.dotDotDotToken ? '...' : ''}${p.name}${optional}: ${checker.typeToString(checker.getTypeOfSymbolAtLocation(p, at), at, FLAGS)}`;
      });
      out.push(`  constructor(${params.join(', ')});`);
    }
    for (const line of members(checker, staticType, at, '  static ', true)) if (!line.includes(' prototype: ')) out.push(line);
    out.push(...members(checker, checker.getDeclaredTypeOfSymbol(symbol), at, '  ', true));
    out.push('}');
  } else if (symbol.flags & ts.SymbolFlags.Interface) {
    const iface = decl as ts.InterfaceDeclaration;
    const heritage = (iface.heritageClauses ?? []).map((h) => h.getText()).join(' ');
    out.push(`export interface ${name}${typeParams(checker, decl)}${heritage ? ` ${heritage}` : ''} {`);
    out.push(...members(checker, checker.getDeclaredTypeOfSymbol(symbol), at, '  ', false));
    out.push('}');
  } else if (symbol.flags & ts.SymbolFlags.TypeAlias) {
    const alias = decl as ts.TypeAliasDeclaration;
    out.push(`export type ${name}${typeParams(checker, decl)} = ${alias.type.getText().replace(/\s*\n\s*/g, ' ')};`);
  } else if (symbol.flags & ts.SymbolFlags.Function) {
    const type = checker.getTypeOfSymbolAtLocation(symbol, at);
    for (const sig of type.getCallSignatures()) out.push(`export function ${name}${checker.signatureToString(sig, at, FLAGS)};`);
  } else if (symbol.flags & ts.SymbolFlags.Variable) {
    out.push(`export const ${name}: ${checker.typeToString(checker.getTypeOfSymbolAtLocation(symbol, at), at, FLAGS)};`);
  } else if (symbol.flags & ts.SymbolFlags.Enum) {
    out.push(`export enum ${name} { ${decl?.getText().replace(/^[^{]*\{|\}\s*$/g, '').trim()} }`);
  } else {
    out.push(`export ${name}; // ${ts.SymbolFlags[symbol.flags] ?? symbol.flags}`);
  }
  return out;
}

/** The report of one package: its exports in name order, each with its declaration as the checker sees it. */
export function apiReport(pkg: string): string {
  const prog = sharedProgram();
  const checker = prog.getTypeChecker();
  const index = prog.getSourceFile(path.join(ROOT, 'packages', pkg, 'src', 'index.ts'));
  if (!index) throw new Error(`packages/${pkg}/src/index.ts is not in the program`);
  const moduleSymbol = checker.getSymbolAtLocation(index);
  if (!moduleSymbol) throw new Error(`packages/${pkg}/src/index.ts exports nothing`);
  const exports = checker.getExportsOfModule(moduleSymbol).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const blocks = exports.map((exp) => {
    const symbol = exp.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exp) : exp;
    return declarationOf(checker, exp.name, symbol, index).join('\n');
  });
  return [
    `# @dstack/${pkg}: public API`,
    '',
    `<!-- Generated from packages/${pkg}/src/index.ts by \`npm run docs\` (tools/docs/api-report.ts); do not edit by hand. -->`,
    '',
    `${exports.length} exports. A change here is a change of the package's promise: make it on purpose.`,
    '',
    '```ts',
    blocks.join('\n\n'),
    '```',
    '',
  ].join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  for (const pkg of reportedPackages()) {
    writeFileSync(reportPath(pkg), apiReport(pkg));
    console.log(`wrote ${path.relative(ROOT, reportPath(pkg))}`);
  }
}
