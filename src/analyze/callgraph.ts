/**
 * GCC's call graph of a TU (-fcallgraph-info, a VCG file beside the object):
 * the direct calls after inlining. It finds the callers that relocations do
 * not show: calls between functions placed in one explicit section
 * (.sched.text, .noinstr.text, ...) are resolved by the assembler and leave
 * no relocation behind.
 */
export interface CallGraph {
  /** callee -> callers (direct calls only). */
  callers: Map<string, Set<string>>;
}

/** Node titles are `file:name` for local functions and `name` for global ones. */
function fnName(title: string): string {
  const i = title.lastIndexOf(':');
  return i >= 0 ? title.slice(i + 1) : title;
}

export function parseCallGraph(text: string): CallGraph {
  const callers = new Map<string, Set<string>>();
  for (const m of text.matchAll(/edge: \{ sourcename: "([^"]*)" targetname: "([^"]*)"/g)) {
    const from = fnName(m[1] as string);
    const to = fnName(m[2] as string);
    if (to === '__indirect_call') continue;
    let set = callers.get(to);
    if (!set) callers.set(to, (set = new Set()));
    set.add(from);
  }
  return { callers };
}
