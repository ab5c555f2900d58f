/**
 * The #if groups around each line of a .c file. A #define copied into the
 * livepatch must keep the conditions it was written under: `#ifndef
 * arch_irq_stat_cpu / #define arch_irq_stat_cpu(cpu) 0` is a fallback the
 * target's headers may already have replaced, and copied alone it would
 * silently change the new code. The module is compiled with the same
 * configuration and headers, so the copied conditions decide as they did.
 */
export interface ConditionalContext {
  /** Directive lines leading to the branch, outermost group first (`#if A`, `#elif B`, `#else`). */
  open: string[];
  /** How many groups enclose the line. */
  depth: number;
  /** Equal for lines in the same branch of the same groups. */
  key: string;
}

const TOP: ConditionalContext = { open: [], depth: 0, key: '' };

interface Frame {
  /** The group's directives so far: its #if and any #elif/#else, as written. */
  directives: { line: number; text: string }[];
}

/** Contexts of the file's lines, 1-based (index 0 unused). */
export function conditionalContexts(text: string): ConditionalContext[] {
  const lines = text.split('\n');
  const out: ConditionalContext[] = [TOP];
  let stack: Frame[] = [];
  let current = TOP;
  let inComment = false;
  const snapshot = (): ConditionalContext => {
    if (stack.length === 0) return TOP;
    const open = stack.flatMap((f) => f.directives.map((d) => d.text));
    const key = stack.map((f) => f.directives.map((d) => d.line).join(',')).join('/');
    return { open, depth: stack.length, key };
  };
  for (let i = 0; i < lines.length; i++) {
    // A directive's continuation lines belong to it.
    let end = i;
    while (/\\\s*$/.test(lines[end] as string) && end + 1 < lines.length) end++;
    const logical = lines.slice(i, end + 1).join('\n');
    const code = stripComments(logical, inComment);
    inComment = code.inComment;
    const m = code.startsInComment ? null : /^\s*#\s*(if|ifdef|ifndef|elif|else|endif)\b/.exec(code.text);
    const directive = m?.[1];
    const at = { line: i + 1, text: logical.trimEnd() };
    if (directive === 'if' || directive === 'ifdef' || directive === 'ifndef') {
      out.push(current);
      stack = [...stack, { directives: [at] }];
    } else if (directive === 'elif' || directive === 'else') {
      out.push(current);
      const top = stack[stack.length - 1];
      if (top) stack = [...stack.slice(0, -1), { directives: [...top.directives, at] }];
    } else if (directive === 'endif') {
      out.push(current);
      stack = stack.slice(0, -1);
    } else {
      for (let j = i; j <= end; j++) out.push(current);
      i = end;
      continue;
    }
    for (let j = i + 1; j <= end; j++) out.push(current);
    current = snapshot();
    i = end;
  }
  return out;
}

/** The line's code outside block comments, and whether a block comment is still open after it. */
function stripComments(
  text: string,
  inComment: boolean,
): { text: string; inComment: boolean; startsInComment: boolean } {
  const startsInComment = inComment;
  let out = '';
  for (let i = 0; i < text.length; i++) {
    if (inComment) {
      if (text.startsWith('*/', i)) {
        inComment = false;
        i++;
      }
      continue;
    }
    if (text.startsWith('/*', i)) {
      inComment = true;
      i++;
      continue;
    }
    if (text.startsWith('//', i)) break;
    out += text[i];
  }
  return { text: out, inComment, startsInComment };
}

/**
 * Pieces of text in file order, each wrapped in its context's directives;
 * neighbours in the same branch share one wrapping.
 */
export function wrapInConditionals<T extends { context: ConditionalContext }>(
  pieces: T[],
  emit: (piece: T) => void,
  emitLine: (text: string) => void,
): void {
  let open: ConditionalContext = TOP;
  const close = () => {
    for (let d = 0; d < open.depth; d++) emitLine('#endif');
  };
  for (const p of pieces) {
    if (p.context.key !== open.key) {
      close();
      for (const l of p.context.open) emitLine(l);
      open = p.context;
    }
    emit(p);
  }
  close();
}
