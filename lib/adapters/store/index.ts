/** Artifact store: immutable objects in S3 with their sha256, and the key layout they live under. */
export { ArtifactStore, canonicalJson, parseS3Uri, s3Uri, sha256Hex, type ArtifactStoreOptions, type ObjectInfo, type StoredObject } from './artifactStore.ts';
export { keys } from './keys.ts';
export { StoreError } from './errors.ts';
