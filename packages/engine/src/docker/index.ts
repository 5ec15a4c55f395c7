// The docker executor and the factory image it runs in.
export {
  CONTAINER_LABEL,
  CONTAINER_SCRIPT,
  DockerExecutor,
  JOB_LABEL,
  dockerFromEnv,
  type DockerExecutorOptions,
} from './executor.js';
export {
  CONTENT_LABEL,
  FACTORY_CONTEXT,
  FACTORY_REPOSITORY,
  buildImage,
  ensureFactoryImage,
  type BuildImageOptions,
} from './image.js';
export { buildInputs, packInputs, type InputPath } from './inputs.js';
export { emulatedPlatforms, enginePlatforms, requirePlatform, runsPlatform, type EnginePlatforms } from './platforms.js';
