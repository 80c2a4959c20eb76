/**
 * Every seeded random stream agentflow draws (Math.random cannot be seeded), in one module:
 * - `mulberry32` / `Random`: a stream that is never stored — synthetic data, shuffles, weight init,
 *   dropout masks — fast and reproducible from its seed alone;
 * - `createRng`: a stream whose whole state is plain JSON, for tuners and routers that store it in
 *   DynamoDB and resume it exactly.
 * Seeds for sub-streams come from `deriveSeed(seed, label)` (one parent seed and a label) and
 * `hashSeed(...parts)` (ids such as a run and a trial). The two generators and hashers stay
 * distinct because changing either would change every stored tuner state and every generated
 * dataset, model initialisation and shuffle order that tests and users have already seen.
 */
export { deriveSeed, mulberry32, Random } from './stream.ts';
export { createRng, hashSeed, seedRng, type Rng, type RngState } from './stored.ts';
export { RandomError, type RandomErrorCode } from './errors.ts';
