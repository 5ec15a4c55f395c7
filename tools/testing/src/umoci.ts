import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface UnpackedBundle {
  rootfs: string;
  /** uid and gid of a path under rootfs ("app/pkg/mod.py") as the image's layers set them. */
  owner(rel: string): [number, number];
}

/**
 * `umoci unpack --rootless`: the tests run as any user (issue 17). umoci cannot chown then, so it keeps each file's
 * owner from the layers in its mtree manifest as the rootless-containers xattr (a protobuf: 1 = uid, 2 = gid); an
 * entry without it belongs to root.
 */
export async function umociUnpack(image: string, bundle: string): Promise<UnpackedBundle> {
  await run('umoci', ['unpack', '--rootless', '--image', image, bundle]);
  const mtreeName = (await fs.readdir(bundle)).find((n) => n.endsWith('.mtree'));
  if (!mtreeName) throw new Error(`umoci wrote no mtree manifest in ${bundle}`);
  const owners = ownersFromMtree(await fs.readFile(path.join(bundle, mtreeName), 'utf8'));
  return {
    rootfs: path.join(bundle, 'rootfs'),
    owner(rel) {
      const o = owners.get(rel.replace(/^\/+|\/+$/g, ''));
      if (!o) throw new Error(`${rel} is not in the unpacked image`);
      return o;
    },
  };
}

function ownersFromMtree(text: string): Map<string, [number, number]> {
  const owners = new Map<string, [number, number]>();
  const dirs: string[] = [];
  let defaultType = 'file';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const [name, ...keywords] = line.split(/\s+/);
    const kv = new Map(keywords.map((k) => [k.slice(0, k.indexOf('=')), k.slice(k.indexOf('=') + 1)] as const));
    if (name === '/set') {
      defaultType = kv.get('type') ?? defaultType;
      continue;
    }
    if (name === '..') {
      dirs.pop();
      continue;
    }
    if (name === '.') continue;
    const decoded = name!.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    const rel = [...dirs, decoded].join('/');
    owners.set(rel, decodeOwner(kv.get('xattr.user.rootlesscontainers')));
    if ((kv.get('type') ?? defaultType) === 'dir') dirs.push(decoded);
  }
  return owners;
}

function decodeOwner(xattr: string | undefined): [number, number] {
  const owner: [number, number] = [0, 0];
  if (!xattr) return owner;
  const bytes = Buffer.from(xattr, 'base64');
  for (let i = 0; i < bytes.length; ) {
    const tag = bytes[i++]!;
    let value = 0;
    for (let shift = 0; ; shift += 7) {
      const b = bytes[i++]!;
      value += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) break;
    }
    if (tag === 0x08) owner[0] = value;
    else if (tag === 0x10) owner[1] = value;
  }
  return owner;
}
