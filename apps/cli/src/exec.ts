import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

/**
 * promisify(execFile), made at the first call: bin/dstack-factory.cjs requires child_process when a property of it
 * is first read, and the command modules that use this load at every start-up.
 */
export const execFileAsync = ((...args: unknown[]) => (promisify(execFile) as (...a: unknown[]) => unknown)(...args)) as typeof execFile.__promisify__;
