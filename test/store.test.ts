import * as z from 'zod';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { makeClients } from '#lib/adapters/config/index.ts';
import { ArtifactStore, canonicalJson, keys, parseS3Uri, s3Uri, sha256Hex, StoreError } from '#lib/adapters/store/index.ts';
import { useLocalAws } from './helpers/localAws.ts';

const aws = useLocalAws();
const storeFor = (options: { listPageSize?: number } = {}) => new ArtifactStore({ s3: aws.clients.s3, bucket: aws.config.bucket, ...options });

describe('ArtifactStore against s3rver', () => {
  it('round-trips JSON and records its sha256 in metadata', async () => {
    const store = storeFor();
    const manifest = { runId: 'r1', tasks: ['spam', 'topic'], rows: 1200 };

    const stored = await store.putJson(keys.runManifest('r1'), manifest);

    expect(stored.key).toBe('runs/r1/manifest.json');
    expect(stored.uri).toBe(`s3://${aws.config.bucket}/runs/r1/manifest.json`);
    expect(await store.getJson(stored.uri, z.unknown())).toEqual(manifest);
    const head = await store.head(stored.key);
    expect(head?.sha256).toBe(stored.sha256);
    expect(head?.sizeBytes).toBe(stored.sizeBytes);
    expect(stored.sha256).toBe(sha256Hex(await store.getBytes(stored.key)));
  });

  it('parses a JSON document with its schema, and names the key, each bad field and its problem when it does not fit', async () => {
    const store = storeFor();
    const Card = z.object({ project: z.string(), version: z.int().positive(), tasks: z.array(z.object({ name: z.string() })) });
    await store.putJson(keys.modelCard('demo', 1), { project: 'demo', version: 1, tasks: [{ name: 'spam' }], extra: true });
    await store.putJson(keys.modelCard('demo', 2), { project: 'demo', version: 0, tasks: [{ label: 'spam' }] });

    expect(await store.getJson(keys.modelCard('demo', 1), Card)).toEqual({ project: 'demo', version: 1, tasks: [{ name: 'spam' }] });
    const failure = await store.getJson(keys.modelCard('demo', 2), Card).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(StoreError);
    expect(failure).toMatchObject({ code: 'DOCUMENT_INVALID', context: { key: 'models/demo/2/card.json' } });
    expect((failure as Error).message).toMatch(
      new RegExp(
        `^s3://${aws.config.bucket}/models/demo/2/card\\.json is not the document expected there: version: .*; tasks\\.0\\.name: .*write it again with the stage that owns it$`,
      ),
    );
  });

  it('round-trips bytes with a content type', async () => {
    const store = storeFor();
    const bytes = randomBytes(4096);

    const stored = await store.putBytes(keys.model('demo', 3), bytes, { contentType: 'application/onnx' });

    expect(Buffer.from(await store.getBytes(stored.key)).equals(bytes)).toBe(true);
    expect(stored).toMatchObject({ key: 'models/demo/3/model.onnx', sha256: sha256Hex(bytes), sizeBytes: 4096 });
    expect((await store.head(stored.key))?.contentType).toBe('application/onnx');
  });

  it('throws NOT_FOUND naming the key when reading a missing object', async () => {
    const store = storeFor();

    const error = await store.getBytes('runs/missing/manifest.json').catch((caught: unknown) => caught);

    expect(error).toBeInstanceOf(StoreError);
    expect(error).toMatchObject({ code: 'NOT_FOUND', name: 'StoreError' });
    expect((error as Error).message).toContain('runs/missing/manifest.json');
    await expect(store.getStream('runs/missing/x')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(await store.exists('runs/missing/manifest.json')).toBe(false);
  });

  it('finds a JSON document in one read, undefined when there is none, and still refuses one that does not fit its schema', async () => {
    const store = storeFor();
    await store.putJson('runs/find/doc.json', { a: 1 });

    expect(await store.findJson('runs/find/doc.json', z.object({ a: z.number() }))).toEqual({ a: 1 });
    expect(await store.findJson('runs/find/missing.json', z.object({ a: z.number() }))).toBeUndefined();
    await expect(store.findJson('runs/find/doc.json', z.object({ a: z.string() }))).rejects.toMatchObject({ code: 'DOCUMENT_INVALID' });
  });

  it('uploads a 12 MiB stream in multipart and streams it back with the same sha256', async () => {
    const { s3 } = makeClients(aws.config);
    const commands: string[] = [];
    s3.middlewareStack.add(
      (next, context) => (args) => {
        commands.push(context.commandName ?? '');
        return next(args);
      },
      { step: 'initialize' },
    );
    const store = new ArtifactStore({ s3, bucket: aws.config.bucket, partSizeBytes: 5 * 1024 * 1024 });
    const chunk = randomBytes(1024 * 1024);
    const chunkCount = 12;
    const expected = createHash('sha256');
    for (let i = 0; i < chunkCount; i++) expected.update(chunk);
    async function* source() {
      for (let i = 0; i < chunkCount; i++) yield chunk;
    }

    const stored = await store.putStream(keys.features('abc123', 'shard-0000.arrow'), source());

    expect(commands.filter((name) => name === 'UploadPartCommand')).toHaveLength(3);
    expect(commands).toContain('CompleteMultipartUploadCommand');
    expect(stored.sizeBytes).toBe(chunkCount * chunk.length);
    expect(stored.sha256).toBe(expected.digest('hex'));
    const downloaded = createHash('sha256');
    let sizeBytes = 0;
    for await (const part of await store.getStream(stored.uri)) {
      downloaded.update(part as Buffer);
      sizeBytes += (part as Buffer).length;
    }
    expect(sizeBytes).toBe(stored.sizeBytes);
    expect(downloaded.digest('hex')).toBe(stored.sha256);
    expect((await store.head(stored.key))?.sha256).toBe(stored.sha256);
    s3.destroy();
  });

  it('writes nothing when a stream does not match its expected sha256', async () => {
    const store = storeFor();
    const key = keys.runFile('r2', 'weights.bin');

    const error = await store
      .putStream(key, Readable.from([Buffer.from('abc')]), { expectedSha256: sha256Hex(Buffer.from('abd')) })
      .catch((caught: unknown) => caught);

    expect(error).toMatchObject({ code: 'CHECKSUM_MISMATCH' });
    expect(await store.exists(key)).toBe(false);
  });

  it('stores content-addressed objects once and returns the same key for the same content', async () => {
    const store = storeFor();
    const card = { version: 1, tasks: { spam: { auc: 0.91 } } };

    const first = await store.putContentAddressed('runs/r3/cards', card);
    const lastModified = (await store.head(first.key))?.lastModified;
    await new Promise((done) => setTimeout(done, 1100)); // S3 timestamps have second resolution
    const second = await store.putContentAddressed('runs/r3/cards', { tasks: { spam: { auc: 0.91 } }, version: 1 });

    expect(second).toEqual(first);
    expect(first.key).toBe(`runs/r3/cards/${first.sha256}.json`);
    expect(first.sha256).toBe(sha256Hex(Buffer.from(canonicalJson(card))));
    expect((await store.head(first.key))?.lastModified).toEqual(lastModified);
    const other = await store.putContentAddressed('runs/r3/cards', Buffer.from('different'), { extension: '.bin' });
    expect(other.key).not.toBe(first.key);
    expect((await store.list('runs/r3/cards/')).map((object) => object.key).sort()).toEqual([first.key, other.key].sort());
  });

  it('lists every key under a prefix across pages, and nothing outside it', async () => {
    const store = storeFor({ listPageSize: 7 });
    const written = Array.from({ length: 30 }, (_, i) => keys.trialFile('r4', `t${String(i).padStart(2, '0')}`, 'result.json'));
    await Promise.all(written.map((key, i) => store.putJson(key, { i })));
    await store.putJson(keys.runManifest('r40'), {});

    const listed = await store.list(keys.runPrefix('r4'));

    expect(listed.map((object) => object.key)).toEqual(written);
    expect(listed.every((object) => object.sizeBytes > 0)).toBe(true);
  });
});

describe('S3 URIs and keys', () => {
  it('parses what s3Uri builds', () => {
    expect(parseS3Uri(s3Uri('bucket-a', 'models/demo/1/model.onnx'))).toEqual({ bucket: 'bucket-a', key: 'models/demo/1/model.onnx' });
  });

  it.each(['https://bucket/key', 's3://bucket', 's3:///key', 'bucket/key'])('rejects %s as an S3 URI', (uri) => {
    expect(() => parseS3Uri(uri)).toThrow(StoreError);
  });

  it('refuses a URI from another bucket', () => {
    const store = new ArtifactStore({ s3: aws.clients.s3, bucket: 'mine' });
    expect(() => store.keyOf('s3://theirs/a.json')).toThrow(/bucket "theirs"/);
  });

  it.each([
    ['a run id with a slash', () => keys.runManifest('a/b')],
    ['an empty project', () => keys.model('', 1)],
    ['a name that climbs out', () => keys.runFile('r1', '../r2/manifest.json')],
  ])('rejects %s in a key', (_label, build) => {
    expect(build).toThrow(expect.objectContaining({ code: 'INVALID_KEY' }));
  });

  it('builds the documented layout', () => {
    expect(keys.modelCard('demo', 12)).toBe('models/demo/12/card.json');
    expect(keys.features('d1', 'shards/0.arrow')).toBe('features/d1/shards/0.arrow');
    expect(keys.trialFile('r1', 't3', 'weights.bin')).toBe('runs/r1/trials/t3/weights.bin');
  });
});
