// The tag tables: machine names as PEP 425 / 599 / 600 / 656 spell them, how OCI image configs name the same
// machines, and the legacy manylinux aliases. Every architecture literal of the project lives here.

/** A C library and its version, as a platform tag needs it: glibc "2.36", musl "1.2". */
export interface Libc {
  kind: 'glibc' | 'musl';
  /** "major.minor" */
  version: string;
}

/** One machine: its PEP 425 name (what `platform.machine()` says and tags carry) and its OCI config fields. */
export interface Architecture {
  /** e.g. "x86_64" (linux_x86_64, manylinux_2_17_x86_64). */
  machine: string;
  /** OCI / Docker `architecture`, e.g. "amd64". */
  oci: string;
  /** OCI `variant` when it matters (arm "v7"). */
  variant?: string;
  /** The oldest glibc a manylinux tag exists for on this machine (PEP 600: 2.17, 2.5 on x86). */
  oldestGlibc: [number, number];
  /** Its ELF files' `e_machine`, class and byte order (what the dynamic loader accepts). */
  elf: { machine: number; bits: 32 | 64; endian: 'little' | 'big' };
  /** Debian's multiarch triplet: the library folders /lib/<triplet> and /usr/lib/<triplet>. */
  triplet: string;
}

/** Machines with manylinux / musllinux wheels (PEP 599 names them; PEP 600 / 656 keep the names). */
export const ARCHITECTURES: readonly Architecture[] = [
  { machine: 'x86_64', oci: 'amd64', oldestGlibc: [2, 5], elf: { machine: 62, bits: 64, endian: 'little' }, triplet: 'x86_64-linux-gnu' },
  { machine: 'aarch64', oci: 'arm64', oldestGlibc: [2, 17], elf: { machine: 183, bits: 64, endian: 'little' }, triplet: 'aarch64-linux-gnu' },
  { machine: 'armv7l', oci: 'arm', variant: 'v7', oldestGlibc: [2, 17], elf: { machine: 40, bits: 32, endian: 'little' }, triplet: 'arm-linux-gnueabihf' },
  { machine: 'ppc64le', oci: 'ppc64le', oldestGlibc: [2, 17], elf: { machine: 21, bits: 64, endian: 'little' }, triplet: 'powerpc64le-linux-gnu' },
  { machine: 's390x', oci: 's390x', oldestGlibc: [2, 17], elf: { machine: 22, bits: 64, endian: 'big' }, triplet: 's390x-linux-gnu' },
  { machine: 'i686', oci: '386', oldestGlibc: [2, 5], elf: { machine: 3, bits: 32, endian: 'little' }, triplet: 'i386-linux-gnu' },
  { machine: 'ppc64', oci: 'ppc64', oldestGlibc: [2, 17], elf: { machine: 21, bits: 64, endian: 'big' }, triplet: 'powerpc64-linux-gnu' },
  { machine: 'riscv64', oci: 'riscv64', oldestGlibc: [2, 17], elf: { machine: 243, bits: 64, endian: 'little' }, triplet: 'riscv64-linux-gnu' },
];

/** The PEP 425 machine name of an OCI platform (`amd64` -> x86_64, `arm64` -> aarch64, `arm`+`v7` -> armv7l), or null. */
export function machineOfOciPlatform(architecture: string, variant?: string | null): string | null {
  if (architecture === 'arm') {
    // armhf images without a variant are v7 in practice (Docker Hub's arm32v7); v6 is armv6l, which has no manylinux.
    if (variant === 'v6') return 'armv6l';
    if (variant === 'v5') return 'armv5tel';
    return 'armv7l';
  }
  return ARCHITECTURES.find((a) => a.oci === architecture)?.machine ?? null;
}

/** The OCI platform of a PEP 425 machine name (x86_64 -> amd64), or null. */
export function ociPlatformOfMachine(machine: string): { architecture: string; variant?: string } | null {
  const a = ARCHITECTURES.find((x) => x.machine === machine);
  if (!a) return null;
  return a.variant ? { architecture: a.oci, variant: a.variant } : { architecture: a.oci };
}

/** The machine a glibc dynamic loader is for, from its file name (ld-linux-x86-64.so.2), or null. */
export function machineOfGlibcLoader(file: string): string | null {
  const table: Record<string, string> = {
    'ld-linux-x86-64.so.2': 'x86_64',
    'ld-linux-aarch64.so.1': 'aarch64',
    'ld-linux-armhf.so.3': 'armv7l',
    'ld64.so.2': 'ppc64le',
    'ld64.so.1': 's390x',
    'ld-linux.so.2': 'i686',
    'ld-linux-riscv64-lp64d.so.1': 'riscv64',
  };
  return table[file] ?? null;
}

/** The machine of a musl dynamic loader (ld-musl-x86_64.so.1, ld-musl-armhf.so.1), or null. */
export function machineOfMuslLoader(file: string): string | null {
  const m = /^ld-musl-([a-z0-9_]+)\.so\.1$/.exec(file);
  if (!m) return null;
  const table: Record<string, string> = { armhf: 'armv7l', i386: 'i686', powerpc64le: 'ppc64le', powerpc64: 'ppc64' };
  return table[m[1]!] ?? m[1]!;
}

/** manylinux1/2010/2014 and the glibc each stands for (PEP 513, 571, 599). */
export const LEGACY_MANYLINUX: Readonly<Record<string, [number, number]>> = {
  manylinux1: [2, 5],
  manylinux2010: [2, 12],
  manylinux2014: [2, 17],
};

/** The oldest glibc with manylinux tags on a machine (x86: 2.5, else 2.17). */
export function oldestGlibc(machine: string): [number, number] {
  return ARCHITECTURES.find((a) => a.machine === machine)?.oldestGlibc ?? [2, 17];
}

/** What a Linux platform tag needs: its machine, and a libc kind and minimum version (none for linux_<arch>). */
export interface PlatformNeeds {
  machine: string;
  libc: { kind: 'glibc' | 'musl'; version: [number, number] } | null;
  /** The tag's name for the libc level, e.g. "manylinux_2_39", "manylinux2014", "musllinux_1_2". */
  label: string;
}

/** Reads a Linux platform tag (manylinux_2_17_x86_64, manylinux2014_aarch64, musllinux_1_2_x86_64, linux_armv7l), or null. */
export function platformNeeds(tag: string): PlatformNeeds | null {
  let m = /^manylinux_(\d+)_(\d+)_(.+)$/.exec(tag);
  if (m) return { machine: m[3]!, libc: { kind: 'glibc', version: [Number(m[1]), Number(m[2])] }, label: `manylinux_${m[1]}_${m[2]}` };
  m = /^(manylinux1|manylinux2010|manylinux2014)_(.+)$/.exec(tag);
  if (m) return { machine: m[2]!, libc: { kind: 'glibc', version: LEGACY_MANYLINUX[m[1]!]! }, label: m[1]! };
  m = /^musllinux_(\d+)_(\d+)_(.+)$/.exec(tag);
  if (m) return { machine: m[3]!, libc: { kind: 'musl', version: [Number(m[1]), Number(m[2])] }, label: `musllinux_${m[1]}_${m[2]}` };
  m = /^linux_(.+)$/.exec(tag);
  if (m) return { machine: m[1]!, libc: null, label: 'linux' };
  return null;
}
