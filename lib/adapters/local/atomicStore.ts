/**
 * s3rver's file-system store with S3's all-or-nothing writes.
 *
 * s3rver opens an object's file before it has the bytes and answers a PUT once the request body
 * has been read, not once it is written. A process killed mid-PUT (a run stopped with ^C or
 * SIGKILL, as `agentflow run` must survive) therefore leaves an empty or cut object, or a cut
 * `metadata.json` that makes every later listing of its prefix fail with InternalError; and a
 * reader in the same process can see a part or an object still being written. S3 never shows a
 * partial object, and resuming a run relies on that.
 *
 * Here every file of an object is written in full to a spool folder beside the bucket folders
 * (on the same file system, so a rename moves it) and renamed into place, the bytes last: an
 * object is absent until its bytes are whole. Only over a key that is rewritten with different
 * bytes can a kill between the renames pair the new metadata with the old bytes; agentflow's keys
 * are written once or rewritten with identical bytes.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import S3Object from 's3rver/lib/models/object.js';
import FilesystemStore from 's3rver/lib/stores/filesystem.js';

interface StoredObjectInput {
  bucket: string;
  key: string;
  content: Buffer | Readable;
  metadata: Record<string, string>;
}

export class AtomicFilesystemStore extends FilesystemStore {
  readonly #spoolDir: string;

  /** `spoolDir` must be on the same file system as `rootDirectory` and outside it (a folder in the root reads as a bucket). */
  constructor(rootDirectory: string, spoolDir: string) {
    super(rootDirectory);
    this.#spoolDir = spoolDir;
  }

  /** Empties the spool folder: what is in it was cut off by a process that died mid-write. */
  async clearSpool(): Promise<void> {
    await rm(this.#spoolDir, { recursive: true, force: true });
    await mkdir(this.#spoolDir, { recursive: true });
  }

  override async putObject(object: StoredObjectInput): Promise<{ size: number; md5: string }> {
    const objectPath = this.getResourcePath(object.bucket, object.key, 'object');
    await mkdir(dirname(objectPath), { recursive: true });
    const written = await this.#spool(object.content);
    try {
      await this.#putFile(this.getResourcePath(object.bucket, object.key, 'object.md5'), written.md5);
      await this.#putFile(this.getResourcePath(object.bucket, object.key, 'metadata.json'), JSON.stringify(this.#metadataToStore(object.metadata), null, 2));
      await rename(written.path, objectPath);
    } catch (error) {
      await rm(written.path, { force: true });
      throw error;
    }
    return { size: written.size, md5: written.md5 };
  }

  override async putPart(bucket: string, uploadId: string, partNumber: number, content: Readable): Promise<{ size: number; md5: string }> {
    const partPath = join(this.getResourcePath(bucket, undefined, 'uploads'), uploadId, String(partNumber));
    await mkdir(dirname(partPath), { recursive: true });
    const written = await this.#spool(content);
    await this.#putFile(`${partPath}.md5`, written.md5);
    await rename(written.path, partPath);
    return { size: written.size, md5: written.md5 };
  }

  /** What s3rver keeps of a PUT's headers: the same pick as its own `putMetadata`, which writes in place. */
  #metadataToStore(metadata: Record<string, string>): Record<string, string> {
    const kept: Record<string, string> = {};
    for (const [name, value] of Object.entries(metadata)) {
      if (S3Object.ALLOWED_METADATA.includes(name) || name.startsWith('x-amz-meta-')) kept[name] = value;
    }
    return kept;
  }

  /** Writes the content to a new spool file, resolving once every byte is in it. */
  async #spool(content: Buffer | Readable): Promise<{ path: string; size: number; md5: string }> {
    const path = join(this.#spoolDir, randomUUID());
    const md5 = createHash('md5');
    let size = 0;
    const counting = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        md5.update(chunk);
        size += chunk.length;
        done(null, chunk);
      },
    });
    try {
      await pipeline(Buffer.isBuffer(content) ? Readable.from([content]) : content, counting, createWriteStream(path));
    } catch (error) {
      await rm(path, { force: true });
      throw error;
    }
    return { path, size, md5: md5.digest('hex') };
  }

  async #putFile(path: string, text: string): Promise<void> {
    const spooled = join(this.#spoolDir, randomUUID());
    await writeFile(spooled, text);
    await rename(spooled, path);
  }
}
