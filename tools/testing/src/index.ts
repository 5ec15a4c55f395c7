// Private test helpers shared by the packages' tests. Each helper lives in its own module.
export { isolatedPipEnv } from './pip-env.js';
export {
  bootstrapWheels,
  buildWheel,
  hostileWheels,
  wheelFilenameOf,
  wheelMembers,
  writeLargeWheel,
  writeWheel,
  zipBuffer,
  type HostileWheel,
  type WheelSpec,
  type ZipMemberSpec,
} from './wheels.js';
export {
  baseImageName,
  contentLabel,
  contextDigest,
  contextFiles,
  dockerFor,
  engineSocketPath,
  followBuild,
  imagesDir,
  machineCacheDir,
  packContext,
  registryPort,
  runInContainer,
  sharedBaseImage,
  sharedEngine,
  sharedFactoryImage,
  sharedImage,
  sharedRegistry,
  sharedRuntimeImage,
  systemScriptsDir,
  testLabel,
  untar,
  type RunOptions,
  type RunResult,
  type SharedEngine,
  type SharedImageSpec,
  type SharedRegistry,
} from './docker.js';
export {
  PYTHONS,
  bootstrapWheelhouse,
  buildSourceWheel,
  installAndRun,
  makeGitRepo,
  makeSdist,
  testPython,
  writeCExtPackage,
  writeOldSetupPackage,
  writePurePackage,
  type PackageSpec,
} from './python.js';
export { describeWheelStoreContract } from './wheel-store-contract.js';
export { compileElf, compilePythonExtension, type CompileOptions } from './elf.js';
export { expectValidImage } from './valid-image.js';
export { debianSources, sdistsFromDebianSources, type DebianSource } from './debian-sources.js';
export { umociUnpack, type UnpackedBundle } from './umoci.js';
export { startFaultProxy, type Fault, type FaultProxy } from './fault-proxy.js';
