/**
 * HMAC-SHA256 (RFC 2104 over FIPS 180-4) for one key and many short messages, in JavaScript.
 *
 * Why not node:crypto: signing a prediction id is one HMAC per infer request, and each
 * `createHmac` call goes through OpenSSL's context setup; right after an ONNX run has pushed that
 * code out of the CPU caches it cost 5-8 µs, as much as a third of what a one-record request adds
 * to its model run. Here the key's inner and outer blocks are hashed once, so a MAC of an id's
 * fields is two or three compressions, ~1.5 µs. Only additions, rotations and xors touch
 * the key or the message (no table lookups, no branches on them), so its timing tells nothing.
 * Tests hold it equal to node:crypto's HMAC-SHA256 on random keys and messages.
 */

import { createHash } from 'node:crypto';

const ROUND_CONSTANTS = Int32Array.from(
  [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74,
    0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d,
    0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e,
    0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5,
    0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
  ].map((k) => k | 0),
);
const INITIAL_STATE = Int32Array.from([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19].map((h) => h | 0));
const BLOCK_BYTES = 64;
const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** An HMAC-SHA256 keyed once; not for concurrent use across threads (there are none in a Node process). */
export class HmacSha256 {
  readonly #inner = new Int32Array(8);
  readonly #outer = new Int32Array(8);
  readonly #state = new Int32Array(8);
  readonly #schedule = new Int32Array(64);
  #message = new Uint8Array(256);

  constructor(key: Uint8Array) {
    const block = new Uint8Array(BLOCK_BYTES);
    // A key longer than a block is its SHA-256 (RFC 2104); that happens once, off the request path.
    block.set(key.length > BLOCK_BYTES ? createHash('sha256').update(key).digest() : key);
    const pad = new Uint8Array(BLOCK_BYTES);
    for (const [state, byte] of [
      [this.#inner, 0x36],
      [this.#outer, 0x5c],
    ] as const) {
      for (let i = 0; i < BLOCK_BYTES; i += 1) pad[i] = block[i] ^ byte;
      state.set(INITIAL_STATE);
      compress(state, pad, 0, this.#schedule);
    }
  }

  /** The MAC of `message` (as UTF-8), its first `bytes` bytes (a multiple of 3, up to 30) in base64url. */
  base64url(message: string, bytes: number): string {
    const digest = this.#digest(message);
    let text = '';
    for (let i = 0; i < bytes; i += 3) {
      const triple = (byteOf(digest, i) << 16) | (byteOf(digest, i + 1) << 8) | byteOf(digest, i + 2);
      text += BASE64URL[triple >>> 18] + BASE64URL[(triple >>> 12) & 63] + BASE64URL[(triple >>> 6) & 63] + BASE64URL[triple & 63];
    }
    return text;
  }

  #digest(message: string): Int32Array {
    const length = this.#encode(message);
    const state = this.#state;
    state.set(this.#inner);
    finish(state, this.#message, length, BLOCK_BYTES, this.#schedule);
    // The outer hash reads the inner digest after the key block: its 8 words, then the padding of 96 bytes.
    const w = this.#schedule;
    for (let i = 0; i < 8; i += 1) w[i] = state[i];
    w[8] = 0x80000000 | 0;
    w.fill(0, 9, 15);
    w[15] = (BLOCK_BYTES + 32) * 8;
    state.set(this.#outer);
    compressWords(state, w);
    return state;
  }

  /** UTF-8 of `message` into the message buffer (at most 3 bytes a character), with room for the padding; returns its length. */
  #encode(message: string): number {
    if (this.#message.length < 3 * message.length + BLOCK_BYTES + 9) this.#message = new Uint8Array(2 * (3 * message.length + BLOCK_BYTES + 9));
    const bytes = this.#message;
    let high = 0;
    for (let i = 0; i < message.length; i += 1) {
      const code = message.charCodeAt(i);
      bytes[i] = code;
      high |= code;
    }
    if (high < 0x80) return message.length;
    const encoded = Buffer.from(message, 'utf8');
    bytes.set(encoded);
    return encoded.length;
  }
}

/**
 * Hashes `bytes[0, length)` into `state`, which has already absorbed `before` bytes, padding in
 * place (`bytes` has room for 72 bytes past `length`).
 */
function finish(state: Int32Array, bytes: Uint8Array, length: number, before: number, schedule: Int32Array): void {
  const padded = Math.ceil((length + 9) / BLOCK_BYTES) * BLOCK_BYTES;
  bytes[length] = 0x80;
  bytes.fill(0, length + 1, padded - 4);
  const bits = (before + length) * 8;
  bytes[padded - 4] = bits >>> 24;
  bytes[padded - 3] = bits >>> 16;
  bytes[padded - 2] = bits >>> 8;
  bytes[padded - 1] = bits;
  for (let offset = 0; offset < padded; offset += BLOCK_BYTES) compress(state, bytes, offset, schedule);
}

function byteOf(words: Int32Array, index: number): number {
  return (words[index >> 2] >>> (24 - 8 * (index & 3))) & 0xff;
}

/** One SHA-256 compression of the 64 bytes at `offset` into `state`. */
function compress(state: Int32Array, bytes: Uint8Array, offset: number, w: Int32Array): void {
  for (let i = 0; i < 16; i += 1) {
    const at = offset + 4 * i;
    w[i] = (bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3];
  }
  compressWords(state, w);
}

/** One SHA-256 compression of the block in `w[0, 16)` into `state` (`w` is the 64-word schedule). */
function compressWords(state: Int32Array, w: Int32Array): void {
  for (let i = 16; i < 64; i += 1) {
    const x = w[i - 15];
    const y = w[i - 2];
    const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
    const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
    w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
  }
  let a = state[0];
  let b = state[1];
  let c = state[2];
  let d = state[3];
  let e = state[4];
  let f = state[5];
  let g = state[6];
  let h = state[7];
  for (let i = 0; i < 64; i += 1) {
    const s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const t1 = (h + s1 + ((e & f) ^ (~e & g)) + ROUND_CONSTANTS[i] + w[i]) | 0;
    const s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const t2 = (s0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
    h = g;
    g = f;
    f = e;
    e = (d + t1) | 0;
    d = c;
    c = b;
    b = a;
    a = (t1 + t2) | 0;
  }
  state[0] = (state[0] + a) | 0;
  state[1] = (state[1] + b) | 0;
  state[2] = (state[2] + c) | 0;
  state[3] = (state[3] + d) | 0;
  state[4] = (state[4] + e) | 0;
  state[5] = (state[5] + f) | 0;
  state[6] = (state[6] + g) | 0;
  state[7] = (state[7] + h) | 0;
}
