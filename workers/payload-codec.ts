/**
 * Optional encryption of every payload Ferry's workers and clients hand to Temporal (workflow
 * inputs, statuses, sample values shown on request), so that Temporal stores none of them in
 * clear. AES-256-GCM with keys from FERRY_PAYLOAD_KEY; each payload names its key, so keys can
 * rotate: the first key encrypts, every key decrypts.
 */
import type { DataConverter, Payload, PayloadCodec } from '@temporalio/common';
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

/** The metadata encoding of an encrypted payload. */
export const ENCRYPTED_ENCODING = 'binary/encrypted';
const KEY_ID = 'encryption-key-id';
const CIPHER = 'encryption-cipher';
const CIPHER_NAME = 'AES-256-GCM';
const IV_BYTES = 12;
const TAG_BYTES = 16;

const utf8 = (text: string) => new TextEncoder().encode(text);
const text = (bytes: Uint8Array | null | undefined) => new TextDecoder().decode(bytes ?? new Uint8Array());

export interface PayloadKey {
  /** Names the key in payloads without revealing it: the first 8 bytes of its SHA-256, in hex. */
  id: string;
  key: Buffer;
}

export class PayloadKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PayloadKeyError';
  }
}

/**
 * The keys in FERRY_PAYLOAD_KEY: base64 of 32 random bytes each (`openssl rand -base64 32`),
 * separated by commas; the first encrypts, all decrypt. No keys: payloads are not encrypted.
 */
export function payloadKeysFromEnv(env: NodeJS.ProcessEnv = process.env): PayloadKey[] {
  const value = env.FERRY_PAYLOAD_KEY?.trim();
  if (!value) return [];
  return value.split(',').map((part, index) => {
    const key = Buffer.from(part.trim(), 'base64');
    if (key.length !== 32 || key.toString('base64') !== part.trim()) {
      throw new PayloadKeyError(
        `FERRY_PAYLOAD_KEY key ${index + 1} is not base64 of 32 bytes; make one with: openssl rand -base64 32`,
      );
    }
    return { id: createHash('sha256').update(key).digest('hex').slice(0, 16), key };
  });
}

/** A payload as bytes: its metadata and data, base64 in JSON (no protobuf dependency). */
function serialize(payload: Payload): Uint8Array {
  const metadata = Object.fromEntries(Object.entries(payload.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v ?? new Uint8Array()).toString('base64')]));
  return utf8(JSON.stringify({ metadata, data: Buffer.from(payload.data ?? new Uint8Array()).toString('base64') }));
}

function deserialize(bytes: Uint8Array): Payload {
  const parsed = JSON.parse(text(bytes)) as { metadata: Record<string, string>; data: string };
  return {
    metadata: Object.fromEntries(Object.entries(parsed.metadata).map(([k, v]) => [k, new Uint8Array(Buffer.from(v, 'base64'))])),
    data: new Uint8Array(Buffer.from(parsed.data, 'base64')),
  };
}

/**
 * Encrypts with the first key; decrypts with whichever key a payload names. Payloads written
 * without encryption still decode, so turning it on does not strand running migrations. A
 * payload whose key this process lacks fails with a message saying which key to configure.
 */
export class EncryptingPayloadCodec implements PayloadCodec {
  private readonly byId: Map<string, Buffer>;

  constructor(private readonly keys: readonly PayloadKey[]) {
    this.byId = new Map(keys.map((k) => [k.id, k.key]));
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    const current = this.keys[0];
    if (!current) return payloads;
    return payloads.map((payload) => {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', current.key, iv);
      const sealed = Buffer.concat([iv, cipher.update(serialize(payload)), cipher.final(), cipher.getAuthTag()]);
      return {
        metadata: { encoding: utf8(ENCRYPTED_ENCODING), [KEY_ID]: utf8(current.id), [CIPHER]: utf8(CIPHER_NAME) },
        data: new Uint8Array(sealed),
      };
    });
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => {
      if (text(payload.metadata?.encoding) !== ENCRYPTED_ENCODING) return payload;
      const id = text(payload.metadata?.[KEY_ID]);
      const key = this.byId.get(id);
      if (!key) {
        throw new PayloadKeyError(
          this.keys.length === 0
            ? `a Temporal payload is encrypted (key id ${id}), and this process has no FERRY_PAYLOAD_KEY; set it to the key the workers use`
            : `a Temporal payload is encrypted with key id ${id}, which is not among FERRY_PAYLOAD_KEY's keys (${[...this.byId.keys()].join(', ')}); add that key after the current one`,
        );
      }
      const sealed = Buffer.from(payload.data ?? new Uint8Array());
      const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, IV_BYTES));
      decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
      try {
        return deserialize(Buffer.concat([decipher.update(sealed.subarray(IV_BYTES, sealed.length - TAG_BYTES)), decipher.final()]));
      } catch {
        throw new PayloadKeyError(`a Temporal payload encrypted with key id ${id} does not decrypt: it was altered, or the key is wrong`);
      }
    });
  }
}

/**
 * The data converter every Ferry worker and client uses: with FERRY_PAYLOAD_KEY set, payloads
 * are encrypted; without it they are not, and an encrypted one fails with a clear message.
 */
export function ferryDataConverter(env: NodeJS.ProcessEnv = process.env): DataConverter {
  return { payloadCodecs: [new EncryptingPayloadCodec(payloadKeysFromEnv(env))] };
}
