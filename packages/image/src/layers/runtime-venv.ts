import type { BaseInfo } from './base-info.js';
import type { LayerEntry } from './write-layer.js';

export interface RuntimeLayerOptions {
  /** The venv prefix (default /env). */
  prefix?: string;
  uid: number;
  gid?: number;
  user?: string;
}

/** Adds `user` to passwd/group text when it is missing; returns null when nothing changes. */
export function addUser(passwd: string | null, group: string | null, user: string, uid: number, gid: number): { passwd: string | null; group: string | null } {
  const has = (text: string | null, name: string): boolean => (text ?? '').split('\n').some((l) => l.split(':')[0] === name);
  const line = (text: string | null, add: string): string => {
    const t = text ?? '';
    return t + (t === '' || t.endsWith('\n') ? '' : '\n') + add + '\n';
  };
  return {
    passwd: has(passwd, user) ? null : line(passwd, `${user}:x:${uid}:${gid}::/app:/usr/sbin/nologin`),
    group: has(group, user) ? null : line(group, `${user}:x:${gid}:`),
  };
}

/**
 * The entries that make a base ready for the app: a venv at /env when the base has none (pyvenv.cfg and
 * interpreter links to the base's Python, as `python -m venv` makes them), the user in /etc/passwd and
 * /etc/group when missing, and /app owned by it.
 */
export function runtimeEntries(base: BaseInfo, options: RuntimeLayerOptions): LayerEntry[] {
  const prefix = (options.prefix ?? '/env').replace(/^\/+|\/+$/g, '');
  const gid = options.gid ?? options.uid;
  const entries: LayerEntry[] = [];
  if (!base.venv) {
    const v = base.pythonVersion;
    const home = base.python.slice(0, base.python.lastIndexOf('/'));
    const cfg =
      `home = ${home}\n` +
      `include-system-site-packages = false\n` +
      `version = ${base.pythonFullVersion ?? v}\n` +
      `executable = ${base.python}\n` +
      `command = ${base.python} -m venv /${prefix}\n`;
    entries.push(
      { path: `${prefix}/pyvenv.cfg`, type: 'file', data: Buffer.from(cfg) },
      { path: `${prefix}/bin/python${v}`, type: 'symlink', linkname: base.python },
      { path: `${prefix}/bin/python3`, type: 'symlink', linkname: `python${v}` },
      { path: `${prefix}/bin/python`, type: 'symlink', linkname: `python${v}` },
      { path: `${prefix}/include`, type: 'directory' },
      { path: `${prefix}/lib/python${v}/site-packages`, type: 'directory' },
      { path: `${prefix}/lib64`, type: 'symlink', linkname: 'lib' },
    );
  }
  const users = addUser(base.passwd, base.group, options.user ?? 'webapp', options.uid, gid);
  if (users.passwd !== null) entries.push({ path: 'etc/passwd', type: 'file', data: Buffer.from(users.passwd) });
  if (users.group !== null) entries.push({ path: 'etc/group', type: 'file', data: Buffer.from(users.group) });
  entries.push({ path: 'app', type: 'directory', uid: options.uid, gid });
  return entries;
}
