// The credentials `docker login` stores: $DOCKER_CONFIG/config.json, else ~/.docker/config.json, `auths.<host>.auth`.
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import type { RegistryCredentials } from './client.js';

/** Docker Hub's key in config.json (`docker login` writes it for docker.io, index.docker.io and registry-1.docker.io). */
export const DOCKER_HUB_AUTH_KEY = 'https://index.docker.io/v1/';

const HUB_HOSTS = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

function readAuths(env: NodeJS.ProcessEnv): Record<string, { auth?: string }> {
  try {
    const file = path.join(env.DOCKER_CONFIG ?? path.join(env.HOME ?? homedir(), '.docker'), 'config.json');
    return (JSON.parse(readFileSync(file, 'utf8')) as { auths?: Record<string, { auth?: string }> }).auths ?? {};
  } catch {
    return {};
  }
}

function decode(auth: string): RegistryCredentials {
  const decoded = Buffer.from(auth, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/**
 * The credentials stored for one registry host ("127.0.0.1:5077", "ghcr.io"; Docker Hub under any of its names),
 * looked up as `host`, `https://host` and `http://host`; null when none are stored or the file is unreadable.
 * Credential helpers (`credsStore`, `credHelpers`) are not run: log in with a plain store.
 */
export function dockerConfigCredentials(registry: string, env: NodeJS.ProcessEnv = process.env): RegistryCredentials | null {
  const auths = readAuths(env);
  const host = HUB_HOSTS.has(registry) ? DOCKER_HUB_AUTH_KEY : registry;
  const auth = auths[host]?.auth ?? auths[`https://${host}`]?.auth ?? auths[`http://${host}`]?.auth;
  return auth ? decode(auth) : null;
}

/**
 * Every credential of the docker config, by the registry host a {@link RegistryClient} is given (Docker Hub's
 * under registry-1.docker.io): `new RegistryClient({ credentials: dockerConfigAuths() })`.
 */
export function dockerConfigAuths(env: NodeJS.ProcessEnv = process.env): Record<string, RegistryCredentials> {
  const out: Record<string, RegistryCredentials> = {};
  for (const [key, value] of Object.entries(readAuths(env))) {
    if (!value.auth) continue;
    const host = key === DOCKER_HUB_AUTH_KEY ? 'registry-1.docker.io' : key.replace(/^https?:\/\//, '').replace(/\/.*$/, '');
    out[host] = decode(value.auth);
  }
  return out;
}
