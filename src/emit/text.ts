import type { TuEntity, TuModel } from '../frontend/model.js';

/**
 * Text of the fix's .c as the emitted C copies it: line ranges, macro invocations, declarations
 * made from definitions, and the renames of the new functions.
 */

export const PREFIX = 'livepatch_';
/** What a module TU's THIS_MODULE becomes: the patched module's __this_module. */
export const TARGET_MODULE = 'klpgen_target_module';
/** `klpgen_addr_NAME` is the running kernel's NAME where the module also has a copy of NAME. */
export const ADDRESS_PREFIX = 'klpgen_addr_';

/** The patched .c's lines, read by definition spans (1-based, inclusive). */
export class SourceText {
  readonly lines: string[];

  constructor(
    text: string,
    private readonly model: TuModel,
    private readonly file: string,
  ) {
    this.lines = text.split('\n');
  }

  take(from: number, to: number): string {
    return this.lines.slice(from - 1, to).join('\n');
  }

  /**
   * The last line of what starts at `from`: a definition a macro invocation makes has the
   * invocation's first line as its span, while its arguments may go on (INTERVAL_TREE_DEFINE(...,
   * three lines)): taken up to the closing parenthesis.
   */
  invocationEnd(from: number, to: number): number {
    const lines = this.lines;
    // A definition with its own braces is whole; a macro invocation's span has none.
    if (this.take(from, to).includes('{')) return to;
    let depth = 0;
    let end = to;
    const count = (l: string) => {
      for (const c of l.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|\/\*.*?\*\/|\/\/.*$/g, ''))
        depth += c === '(' ? 1 : c === ')' ? -1 : 0;
    };
    for (let n = from; n <= to; n++) count(lines[n - 1] ?? '');
    while (depth > 0 && end < lines.length) count(lines[end++] ?? '');
    // SYSCALL_DEFINE3(...) { body }: the body belongs to another function the invocation makes
    // (__do_sys_name); the whole invocation is copied whichever of them is needed.
    for (const e of this.model.entities)
      if (e.span.file === this.file && e.span.line === from && e.span.endLine > end) end = e.span.endLine;
    return end;
  }
}

export function anonymousEnumAround(e: TuEntity, lines: string[]): TuEntity | undefined {
  let start = e.span.line - 1;
  while (start >= 0 && !/\benum\b/.test(lines[start] as string)) start--;
  if (start < 0) return undefined;
  let depth = 0;
  let seen = false;
  for (let i = start; i < lines.length; i++) {
    for (const c of lines[i] as string) {
      if (c === '{') {
        depth++;
        seen = true;
      }
      if (c === '}') depth--;
    }
    if (seen && depth === 0) {
      if (i + 1 < e.span.line) return undefined;
      return { ...e, kind: 'enum', name: '', span: { ...e.span, line: start + 1, endLine: i + 1 } };
    }
  }
  return undefined;
}

/** Does this text leave a block comment open (strings and // comments aside)? */
export function opensComment(text: string): boolean {
  const rest = text
    .replace(/"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'/g, '""')
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/\/\/[^\n]*/g, '');
  return rest.includes('/*');
}

export function renameAddressUses(text: string, names: ReadonlySet<string>): string {
  if (names.size === 0) return text;
  return text.replace(
    /\/\*[\s\S]*?\*\/|\/\/[^\n]*|"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|(?<![\w.]|->\s*|\b(?:struct|union|enum)\s+)([A-Za-z_]\w*)(?!\s*\(|\w)/g,
    (m, id: string | undefined) => {
      if (id !== undefined && names.has(id)) return `${ADDRESS_PREFIX}${id}`;
      return m;
    },
  );
}

/**
 * Rename references to replaced functions to their new names, outside strings
 * and comments; a struct tag or a member of the same name is not one.
 */
export function renameIdentifiers(text: string, names: Set<string>, prefix = PREFIX): string {
  return text.replace(
    /\/\*[\s\S]*?\*\/|\/\/[^\n]*|"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|(?<![\w.]|->\s*|\b(?:struct|union|enum)\s+)([A-Za-z_]\w*)/g,
    (m, id: string | undefined) => {
      if (id !== undefined && names.has(id)) return `${prefix}${id}`;
      return m;
    },
  );
}

/** A definition made global (a knowledge copy the compiler must not specialise for the module's few callers). */
export function withoutStatic(text: string): string {
  const open = text.indexOf('{');
  const head = open >= 0 ? text.slice(0, open) : text;
  return `${head.replace(/\bstatic\s+/, '')}${open >= 0 ? text.slice(open) : ''}`;
}

/** A new function is referenced from the scaffolding file: it must not be static. */
export function makeGlobal(text: string): string {
  const open = text.indexOf('{');
  const head = open >= 0 ? text.slice(0, open) : text;
  return (
    head.replace(/\bstatic\s+/, '').replace(/\b(inline|__always_inline|noinline)\s+/g, '') +
    (open >= 0 ? text.slice(open) : '')
  );
}

/**
 * `extern` declaration of a definition that stays in the running kernel, from
 * the preprocessed text: definitions made by macros (DEFINE_SPINLOCK,
 * DEFINE_STATIC_CALL, SYSCALL_DEFINE) have no declaration in the source.
 */
export function externDeclaration(
  d: TuEntity,
  preprocessed: string,
  model: TuModel,
  sizes: ReadonlyMap<string, number> | undefined,
): string {
  const text = preprocessed.slice(d.iSpan[0], d.iSpan[1]).replace(/^#.*$/gm, ' ');
  if (d.kind === 'function') {
    const open = text.indexOf('{');
    const head = (open >= 0 ? text.slice(0, open) : text.replace(/;\s*$/, '')).replace(/\s+/g, ' ').trim();
    return `${head.replace(/\bstatic\s+/, '').replace(/\b(inline|__inline__|__inline)\s+/g, '')};`;
  }
  const eq = findInitializer(text);
  // `static struct tag { ... } *x;`: the type is copied on its own, the declaration names its tag.
  const decl = withoutTaggedBodies(eq >= 0 ? text.slice(0, eq) : text.replace(/;\s*$/, ''))
    .replace(/\s+/g, ' ')
    .trim();
  const extern = `extern ${decl.replace(/^(?:static|extern)\s+/, '')};`;
  // An array sized by its initializer (`x[] = {...}`, or a typedef of an array of unknown bound):
  // the declaration alone has no size, which ARRAY_SIZE() needs. The running kernel's object
  // has it: a second declaration completes the type.
  const arrayTypedef = d.refs.some(
    (r) =>
      r.startsWith('typedef:') &&
      model.entities.some(
        (t) =>
          t.kind === 'typedef' &&
          `typedef:${t.name}` === r &&
          /\[\s*\]\s*;?\s*$/.test(preprocessed.slice(t.iSpan[0], t.iSpan[1])),
      ),
  );
  const size = sizes?.get(d.name);
  // (`x[] __attribute__((__section__(".data..read_mostly")))`: the bound is before the attributes.)
  if (size && (/\[\s*\](\s*__attribute__\s*\(\(.*\)\))*$/.test(decl) || arrayTypedef)) {
    return `${extern}\nextern typeof(${d.name}[0]) ${d.name}[${size} / sizeof(${d.name}[0])];`;
  }
  return extern;
}

/** The end of the brace group opening at `open`. */
function closingBrace(text: string, open: number): number {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    if (text[i] === '{') depth++;
    else if (text[i] === '}' && --depth === 0) return i;
  }
  return -1;
}

/**
 * A struct, union or enum definition that also declares variables (`static struct
 * res_config { ... } *res_cfg;`) copied as the type alone: the variables stay the
 * running kernel's. A typedef keeps its text (the typedef is the point).
 */
export function typeOnly(text: string): string {
  const m = /\b(struct|union|enum)\b[^{;]*\{/.exec(text);
  if (!m || /^\s*typedef\b/.test(text.slice(0, m.index))) return text;
  const close = closingBrace(text, m.index + m[0].length - 1);
  const rest = text.slice(close + 1);
  // `} __packed;` is the type's own attribute, not a variable: left whole.
  if (close < 0 || /^\s*;\s*$/.test(rest) || /\b__\w+/.test(rest.split(';')[0] as string)) return text;
  return `${text.slice(m.index, close + 1)};`;
}

/** `struct tag { ... }` as `struct tag` (an anonymous one keeps its body: it has no other name). */
export function withoutTaggedBodies(decl: string): string {
  let out = decl;
  for (let m = /\b(struct|union|enum)\s+(\w+)\s*\{/.exec(out); m; m = /\b(struct|union|enum)\s+(\w+)\s*\{/.exec(out)) {
    const close = closingBrace(out, m.index + m[0].length - 1);
    if (close < 0) break;
    out = `${out.slice(0, m.index)}${m[1]} ${m[2]}${out.slice(close + 1)}`;
  }
  return out;
}

function findInitializer(text: string): number {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ')' || c === ']' || c === '}') depth--;
    else if (c === '=' && depth === 0 && text[i + 1] !== '=' && !'!<>='.includes(text[i - 1] ?? '')) return i;
  }
  return -1;
}
