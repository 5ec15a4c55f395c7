// @dstack/engine: recipe + target -> plan -> executor -> wheels ingested into the wheelhouse, and a lock.
export type {
  BuildEvent,
  BuildFailure,
  BuildJob,
  BuildResult,
  BuiltWheel,
  EventSink,
  Executor,
  InterpreterInfo,
  PlannedPackage,
} from './executor.js';
export { FACTORY_SCRIPT, FactoryRun, factoryArgs, type FactoryArgs } from './protocol.js';
export { EngineError } from './errors.js';
export { LocalExecutor, resolvePython, type LocalExecutorOptions } from './local.js';
export { FailureDigest, debianPackageForHeader, type ExplainedFailure, type MissingRequirement } from './failure.js';
export { acquireBuildLock, buildLockFile, type HeldBuildLock } from './buildlock.js';
export { archiveWheels, withArchiveFindLinks, type ArchiveResult } from './archive.js';
export {
  buildWheelhouse,
  cacheKey,
  cachedTarget,
  environmentMarker,
  findWheelByName,
  lockFileFor,
  type BuildOptions,
  type BuildSummary,
  type IngestedWheel,
  type TargetSummary,
} from './engine.js';
export { planWheelhouse, type BuildPlan, type PlanStep, type TargetPlan } from './plan.js';
export {
  CONTAINER_LABEL,
  CONTAINER_SCRIPT,
  CONTENT_LABEL,
  DockerExecutor,
  FACTORY_CONTEXT,
  FACTORY_REPOSITORY,
  JOB_LABEL,
  buildImage,
  buildInputs,
  dockerFromEnv,
  emulatedPlatforms,
  enginePlatforms,
  ensureFactoryImage,
  packInputs,
  requirePlatform,
  runsPlatform,
  type BuildImageOptions,
  type EnginePlatforms,
  type DockerExecutorOptions,
  type InputPath,
} from './docker/index.js';
