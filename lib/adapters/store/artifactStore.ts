import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { GetObjectCommand, HeadObjectCommand, ListObjectsCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type * as z from 'zod';
import { StoreError } from './errors.ts';
import { canonicalJson } from '#lib/domain/spec/digest.ts';

/** Re-exported: content-addressed JSON keys hash the same canonical form the spec digest uses. */
export { canonicalJson };

/** What every put returns: enough to find the object again and to check its bytes. */
export interface StoredObject {
  key: string;
  /** `s3://bucket/key`; Step Functions payloads carry this, never the bytes. */
  uri: string;
  sha256: string;
  sizeBytes: number;
}

export interface ObjectInfo {
  key: string;
  sizeBytes: number;
  /** From object metadata; absent for objects not written through the store (user datasets). */
  sha256?: string;
  contentType?: string;
  lastModified?: Date;
}

export interface ArtifactStoreOptions {
  s3: S3Client;
  bucket: string;
  /** Multipart part size for `putStream`; S3 requires at least 5 MiB. Default 8 MiB. */
  partSizeBytes?: number;
  /** Keys per ListObjects page (S3 caps it at 1000). Default 1000. */
  listPageSize?: number;
  /** Where `putStream` spools a stream to hash it before upload. Default the OS temp folder. */
  tmpDir?: string;
}

const MIN_PART_SIZE_BYTES = 5 * 1024 * 1024;
const SHA256_METADATA = 'sha256';

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export function s3Uri(bucket: string, key: string): string {
  return `s3://${bucket}/${key}`;
}

export function parseS3Uri(uri: string): { bucket: string; key: string } {
  const match = /^s3:\/\/([^/]+)\/(.+)$/.exec(uri);
  if (!match) {
    throw new StoreError(`${JSON.stringify(uri)} is not an S3 URI: expected s3://<bucket>/<key>`, {
      code: 'INVALID_URI',
      context: { uri },
    });
  }
  return { bucket: match[1], key: match[2] };
}

/**
 * Artifacts in one S3 bucket. Every put records the sha256 of the bytes in object metadata and
 * returns it, so a reader can check what it fetched and a registry entry can pin it.
 */
export class ArtifactStore {
  readonly bucket: string;
  readonly #s3: S3Client;
  readonly #partSizeBytes: number;
  readonly #listPageSize: number;
  readonly #tmpDir: string;

  constructor(options: ArtifactStoreOptions) {
    const partSizeBytes = options.partSizeBytes ?? 8 * 1024 * 1024;
    if (partSizeBytes < MIN_PART_SIZE_BYTES) {
      throw new StoreError(`partSizeBytes ${partSizeBytes} is below S3's multipart minimum; use at least ${MIN_PART_SIZE_BYTES} (5 MiB)`, {
        code: 'INVALID_OPTION',
        context: { partSizeBytes },
      });
    }
    this.#s3 = options.s3;
    this.bucket = options.bucket;
    this.#partSizeBytes = partSizeBytes;
    this.#listPageSize = Math.min(1000, Math.max(1, options.listPageSize ?? 1000));
    this.#tmpDir = options.tmpDir ?? tmpdir();
  }

  uri(key: string): string {
    return s3Uri(this.bucket, key);
  }

  /** Accepts a key or an `s3://` URI in this bucket. */
  keyOf(keyOrUri: string): string {
    if (!keyOrUri.startsWith('s3://')) return keyOrUri;
    const { bucket, key } = parseS3Uri(keyOrUri);
    if (bucket !== this.bucket) {
      throw new StoreError(`${keyOrUri} is in bucket "${bucket}", but this store reads bucket "${this.bucket}"; pass a URI in "${this.bucket}"`, {
        code: 'INVALID_URI',
        context: { uri: keyOrUri, bucket: this.bucket },
      });
    }
    return key;
  }

  async putBytes(keyOrUri: string, bytes: Uint8Array, options: { contentType?: string } = {}): Promise<StoredObject> {
    const key = this.keyOf(keyOrUri);
    const sha256 = sha256Hex(bytes);
    await this.#put(key, bytes, { sha256, contentType: options.contentType ?? 'application/octet-stream' });
    return { key, uri: this.uri(key), sha256, sizeBytes: bytes.byteLength };
  }

  putJson(keyOrUri: string, value: unknown): Promise<StoredObject> {
    return this.putBytes(keyOrUri, Buffer.from(JSON.stringify(value, null, 2)), { contentType: 'application/json' });
  }

  async getBytes(keyOrUri: string): Promise<Uint8Array> {
    const key = this.keyOf(keyOrUri);
    const response = await this.#send(key, 'read', () => this.#s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: key })));
    if (!response.Body) throw this.#notFound(key);
    return response.Body.transformToByteArray();
  }

  /**
   * A JSON document, parsed with its schema: what comes back from S3 was written by another
   * process (or another version of this one), so it is checked, never cast. A document that does
   * not fit is a DOCUMENT_INVALID error naming the key, each bad field and its problem.
   */
  async getJson<Schema extends z.ZodType>(keyOrUri: string, schema: Schema): Promise<z.output<Schema>> {
    const key = this.keyOf(keyOrUri);
    const text = Buffer.from(await this.getBytes(key)).toString('utf8');
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw new StoreError(`${this.uri(key)} is not valid JSON (${(error as Error).message}); it was not written by putJson`, {
        code: 'INVALID_JSON',
        context: { key },
        cause: error,
      });
    }
    const parsed = schema.safeParse(value);
    if (parsed.success) return parsed.data;
    const problems = parsed.error.issues.slice(0, 5).map((issue) => `${issue.path.length > 0 ? issue.path.join('.') : '(the document)'}: ${issue.message}`);
    const more = parsed.error.issues.length > problems.length ? ` (and ${parsed.error.issues.length - problems.length} more)` : '';
    throw new StoreError(
      `${this.uri(key)} is not the document expected there: ${problems.join('; ')}${more}; it was written by another version or changed by hand, so write it again with the stage that owns it`,
      {
        code: 'DOCUMENT_INVALID',
        context: { key, issues: parsed.error.issues.map((issue) => ({ path: issue.path.join('.'), message: issue.message })) },
        cause: parsed.error,
      },
    );
  }

  /**
   * Uploads a stream of any size (multipart above the part size). The stream is first spooled to
   * a temporary file while hashing, because the sha256 must be in the metadata when the upload
   * starts; if `expectedSha256` is given and differs, nothing is written.
   */
  async putStream(
    keyOrUri: string,
    source: Readable | AsyncIterable<Uint8Array>,
    options: { contentType?: string; expectedSha256?: string } = {},
  ): Promise<StoredObject> {
    const key = this.keyOf(keyOrUri);
    const folder = await mkdtemp(join(this.#tmpDir, 'agentflow-upload-'));
    const spool = join(folder, randomUUID());
    try {
      const hash = createHash('sha256');
      const hashing = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          hash.update(chunk);
          done(null, chunk);
        },
      });
      await pipeline(Readable.from(source), hashing, createWriteStream(spool));
      const sha256 = hash.digest('hex');
      const { size: sizeBytes } = await stat(spool);
      if (options.expectedSha256 !== undefined && options.expectedSha256 !== sha256) {
        throw new StoreError(`stream for ${this.uri(key)} has sha256 ${sha256}, expected ${options.expectedSha256}; nothing was uploaded — check the source`, {
          code: 'CHECKSUM_MISMATCH',
          context: { key, sha256, expectedSha256: options.expectedSha256 },
        });
      }
      const upload = new Upload({
        client: this.#s3,
        params: {
          Bucket: this.bucket,
          Key: key,
          Body: createReadStream(spool),
          ContentType: options.contentType ?? 'application/octet-stream',
          Metadata: { [SHA256_METADATA]: sha256 },
        },
        partSize: this.#partSizeBytes,
        queueSize: 2,
        leavePartsOnError: false,
      });
      await this.#send(key, 'write', () => upload.done());
      return { key, uri: this.uri(key), sha256, sizeBytes };
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  }

  async getStream(keyOrUri: string): Promise<Readable> {
    const key = this.keyOf(keyOrUri);
    const response = await this.#send(key, 'read', () => this.#s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: key })));
    if (!response.Body) throw this.#notFound(key);
    // In Node the SDK's body is an http.IncomingMessage, i.e. a Readable.
    return response.Body as unknown as Readable;
  }

  /** Size and recorded sha256 of an object, or undefined when there is none. */
  async head(keyOrUri: string): Promise<ObjectInfo | undefined> {
    const key = this.keyOf(keyOrUri);
    try {
      const response = await this.#send(key, 'read', () => this.#s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key })));
      return {
        key,
        sizeBytes: response.ContentLength ?? 0,
        sha256: response.Metadata?.[SHA256_METADATA],
        contentType: response.ContentType,
        lastModified: response.LastModified,
      };
    } catch (error) {
      if (error instanceof StoreError && error.code === 'NOT_FOUND') return undefined;
      throw error;
    }
  }

  /**
   * The JSON document at a key, parsed with its schema, or undefined when there is none: one GET,
   * where `exists` then `getJson` would ask S3 twice (and race a delete in between).
   */
  async findJson<Schema extends z.ZodType>(keyOrUri: string, schema: Schema): Promise<z.output<Schema> | undefined> {
    try {
      return await this.getJson(keyOrUri, schema);
    } catch (error) {
      if (error instanceof StoreError && error.code === 'NOT_FOUND') return undefined;
      throw error;
    }
  }

  async exists(keyOrUri: string): Promise<boolean> {
    return (await this.head(keyOrUri)) !== undefined;
  }

  /**
   * Every object under a prefix, in key order, following pages. Pages with ListObjects (v1) and
   * `Marker` rather than ListObjectsV2 continuation tokens: s3rver builds those with DES, which
   * Node's OpenSSL 3 refuses without `--openssl-legacy-provider` (see lib/adapters/local).
   */
  async list(prefix: string): Promise<ObjectInfo[]> {
    const objects: ObjectInfo[] = [];
    let marker: string | undefined;
    for (;;) {
      const page = await this.#send(prefix, 'list', () =>
        this.#s3.send(new ListObjectsCommand({ Bucket: this.bucket, Prefix: prefix, Marker: marker, MaxKeys: this.#listPageSize })),
      );
      for (const entry of page.Contents ?? []) {
        if (entry.Key === undefined) continue;
        objects.push({ key: entry.Key, sizeBytes: entry.Size ?? 0, lastModified: entry.LastModified });
      }
      const last = page.Contents?.at(-1)?.Key;
      if (!page.IsTruncated || last === undefined) return objects;
      marker = page.NextMarker ?? last;
    }
  }

  /**
   * Stores bytes (or a JSON value, canonically serialized) under `<prefix>/<sha256><extension>`.
   * Immutable: when that key already holds the content, nothing is written and the same key comes
   * back. On AWS `If-None-Match: *` also settles concurrent writers; s3rver ignores it, and a
   * concurrent duplicate there rewrites identical bytes.
   */
  async putContentAddressed(prefix: string, content: Uint8Array | unknown, options: { extension?: string; contentType?: string } = {}): Promise<StoredObject> {
    const isBytes = content instanceof Uint8Array;
    const bytes = isBytes ? content : Buffer.from(canonicalJson(content));
    const extension = options.extension ?? (isBytes ? '' : '.json');
    const contentType = options.contentType ?? (isBytes ? 'application/octet-stream' : 'application/json');
    const sha256 = sha256Hex(bytes);
    const key = `${prefix.replace(/\/+$/, '')}/${sha256}${extension}`;
    const stored: StoredObject = { key, uri: this.uri(key), sha256, sizeBytes: bytes.byteLength };

    const existing = await this.head(key);
    if (existing) {
      if (existing.sha256 !== undefined && existing.sha256 !== sha256) {
        throw new StoreError(
          `${stored.uri} holds content with sha256 ${existing.sha256}, not ${sha256}; the object was overwritten outside agentflow — delete it and write again`,
          {
            code: 'CHECKSUM_MISMATCH',
            context: { key, sha256, found: existing.sha256 },
          },
        );
      }
      return stored;
    }
    try {
      await this.#put(key, bytes, { sha256, contentType, ifNoneMatch: '*' });
    } catch (error) {
      // 412: a concurrent writer stored the same content first; 409: a conditional write raced.
      const status = error instanceof StoreError ? error.context.status : undefined;
      if (status !== 412 && status !== 409) throw error;
    }
    return stored;
  }

  /** One PutObject with the sha256 in its metadata, which every reader checks. */
  async #put(key: string, bytes: Uint8Array, options: { sha256: string; contentType: string; ifNoneMatch?: '*' }): Promise<void> {
    await this.#send(key, 'write', () =>
      this.#s3.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: bytes,
          ContentLength: bytes.byteLength,
          ContentType: options.contentType,
          Metadata: { [SHA256_METADATA]: options.sha256 },
          ...(options.ifNoneMatch ? { IfNoneMatch: options.ifNoneMatch } : {}),
        }),
      ),
    );
  }

  #notFound(key: string): StoreError {
    return new StoreError(`no object at ${this.uri(key)}: check the key, or that the stage that writes it has run`, {
      code: 'NOT_FOUND',
      context: { bucket: this.bucket, key },
    });
  }

  async #send<T>(key: string, action: 'read' | 'write' | 'list', call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      if (error instanceof StoreError) throw error;
      const name = (error as { name?: string }).name;
      const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (name === 'NoSuchBucket') {
        throw new StoreError(`bucket "${this.bucket}" does not exist: create it (the CDK stack or startLocalAws does) or fix AGENTFLOW_BUCKET`, {
          code: 'NO_BUCKET',
          context: { bucket: this.bucket, key },
          cause: error,
        });
      }
      if (action === 'read' && (name === 'NoSuchKey' || name === 'NotFound' || status === 404)) {
        const notFound = this.#notFound(key);
        throw new StoreError(notFound.message, { code: notFound.code, context: notFound.context, cause: error });
      }
      throw new StoreError(`S3 ${action} of ${this.uri(key)} failed: ${(error as Error).message}`, {
        code: 'S3_FAILED',
        context: { bucket: this.bucket, key, status },
        cause: error,
      });
    }
  }
}
