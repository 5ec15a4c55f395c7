// Private test helpers shared by the packages' tests. Each helper lives in its own module.
export { isolatedPipEnv } from './pip-env.js';
