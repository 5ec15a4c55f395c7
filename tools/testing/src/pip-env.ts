/**
 * An environment for running pip in tests, isolated from this machine's own pip configuration
 * (config files, PIP_* variables), so what a test proves holds on any machine.
 */
export function isolatedPipEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('PIP_') || k === 'PYTHONPATH' || k === 'VIRTUAL_ENV') continue;
    env[k] = v;
  }
  return {
    ...env,
    PIP_CONFIG_FILE: '/dev/null',
    PIP_DISABLE_PIP_VERSION_CHECK: '1',
    PIP_NO_INPUT: '1',
    PYTHONDONTWRITEBYTECODE: '1',
    ...extra,
  };
}
