/**
 * A TLS-terminating gRPC proxy in front of a local Temporal, as a secured production server
 * looks to a client: Debian's nginx with `grpc_pass`, certificates made here with openssl. One
 * listener verifies client certificates (mTLS), another requires an API key header.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureDebianPackage } from './debian-package';
import { freePort, waitForListening } from './ports';

export interface TlsProxy {
  /** Requires a client certificate signed by `files.ca`. */
  mtlsAddress: string;
  /** Requires `authorization: Bearer <apiKey>`. */
  apiKeyAddress: string;
  apiKey: string;
  files: {
    /** The CA that signed the server's and the good client's certificates. */
    ca: string;
    clientCert: string;
    clientKey: string;
    /** A client certificate from a CA the proxy does not trust. */
    strangerCert: string;
    strangerKey: string;
  };
  stop(): Promise<void>;
}

export function ensureNginx(): void {
  ensureDebianPackage('nginx', 'nginx', () => spawnSync('nginx', ['-v'], { stdio: 'ignore' }).status === 0 || spawnSync('/usr/sbin/nginx', ['-v'], { stdio: 'ignore' }).status === 0);
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A CA, a server certificate for localhost and 127.0.0.1, a client certificate, and a stranger's. */
export function makeCertificates(dir: string): { ca: string; serverCert: string; serverKey: string } {
  const ca = (name: string) => openssl(dir, ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.crt`]);
  const signed = (name: string, issuer: string, extensions: string) => {
    writeFileSync(path.join(dir, `${name}.ext`), extensions);
    openssl(dir, ['req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.csr`]);
    openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', `${issuer}.crt`, '-CAkey', `${issuer}.key`, '-CAcreateserial', '-days', '2', '-out', `${name}.crt`, '-extfile', `${name}.ext`]);
  };
  ca('ferry-test-ca');
  ca('stranger-ca');
  signed('server', 'ferry-test-ca', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  signed('client', 'ferry-test-ca', 'extendedKeyUsage=clientAuth\n');
  signed('stranger', 'stranger-ca', 'extendedKeyUsage=clientAuth\n');
  return { ca: path.join(dir, 'ferry-test-ca.crt'), serverCert: path.join(dir, 'server.crt'), serverKey: path.join(dir, 'server.key') };
}

/** Starts nginx in front of `temporalAddress` (host:port, plain gRPC). */
export async function startTlsProxy(temporalAddress: string): Promise<TlsProxy> {
  ensureNginx();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-tls-proxy-'));
  makeCertificates(dir);
  const [mtlsPort, apiKeyPort] = [await freePort(), await freePort()];
  const apiKey = `ferry-test-${Math.random().toString(36).slice(2)}`;
  const tls = `ssl_certificate ${dir}/server.crt; ssl_certificate_key ${dir}/server.key; ssl_protocols TLSv1.2 TLSv1.3;`;
  writeFileSync(
    path.join(dir, 'nginx.conf'),
    `
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  grpc_read_timeout 300s;
  grpc_send_timeout 300s;
  client_max_body_size 0;
  server {
    listen 127.0.0.1:${mtlsPort} ssl http2;
    ${tls}
    ssl_client_certificate ${dir}/ferry-test-ca.crt;
    ssl_verify_client on;
    location / { grpc_pass grpc://${temporalAddress}; }
  }
  server {
    listen 127.0.0.1:${apiKeyPort} ssl http2;
    ${tls}
    location / {
      if ($http_authorization != "Bearer ${apiKey}") { return 401; }
      grpc_pass grpc://${temporalAddress};
    }
  }
}
`,
  );
  const nginx: ChildProcess = spawn('nginx', ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-g', 'daemon off; user root;'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  nginx.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  try {
    await Promise.race([
      Promise.all([waitForListening('nginx', mtlsPort, 10_000), waitForListening('nginx', apiKeyPort, 10_000)]),
      new Promise((_, reject) => nginx.once('exit', (code) => reject(new Error(`nginx exited (${code}): ${stderr}${safeRead(path.join(dir, 'error.log'))}`)))),
    ]);
  } catch (error) {
    nginx.kill('SIGKILL');
    throw error;
  }
  return {
    mtlsAddress: `localhost:${mtlsPort}`,
    apiKeyAddress: `localhost:${apiKeyPort}`,
    apiKey,
    files: {
      ca: path.join(dir, 'ferry-test-ca.crt'),
      clientCert: path.join(dir, 'client.crt'),
      clientKey: path.join(dir, 'client.key'),
      strangerCert: path.join(dir, 'stranger.crt'),
      strangerKey: path.join(dir, 'stranger.key'),
    },
    async stop() {
      if (nginx.exitCode === null) {
        const exited = new Promise((resolve) => nginx.once('exit', resolve));
        nginx.kill('SIGQUIT');
        await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5000))]);
        if (nginx.exitCode === null) nginx.kill('SIGKILL');
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function safeRead(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}
