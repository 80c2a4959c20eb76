/** The router's math: Thompson sampling over the versions in the serving set, from feedback counters. */
export { RouteError, type RouteErrorCode } from './errors.ts';
export {
  chooseArm,
  trafficShares,
  recordReward,
  emptyStats,
  pooledGaussianPrior,
  gaussianPosterior,
  type Arm,
  type ArmStats,
  type GaussianPrior,
  type RewardKind,
  type RouteOptions,
} from './thompson.ts';
