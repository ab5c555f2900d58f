/**
 * Progress for long steps: one line when a step starts and one with its
 * duration when it ends, on stderr so that --json output stays clean.
 */
export interface StepTiming {
  name: string;
  seconds: number;
  skipped: boolean;
}

let quiet = false;
export function setQuiet(q: boolean): void {
  quiet = q;
}

export function info(message: string): void {
  if (!quiet) process.stderr.write(`klpgen: ${message}\n`);
}

export async function timed<T>(name: string, fn: () => Promise<T>, timings?: StepTiming[]): Promise<T> {
  const start = process.hrtime.bigint();
  if (!quiet) process.stderr.write(`==> ${name} ...\n`);
  const result = await fn();
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (!quiet) process.stderr.write(`    ${name}: done in ${seconds.toFixed(1)} s\n`);
  timings?.push({ name, seconds, skipped: false });
  return result;
}

export function skipped(name: string, why: string, timings?: StepTiming[]): void {
  if (!quiet) process.stderr.write(`==> ${name}: ${why}\n`);
  timings?.push({ name, seconds: 0, skipped: true });
}
