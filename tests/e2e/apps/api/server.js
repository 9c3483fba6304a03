// A small API with the contract the platform's edge and frontend rely on: CORS for the site's
// origin (SITE_URL, as the program sets it), a JSON route, a WebSocket route, a login route the
// edge rate-limits, /health for the container's health check, /metrics for Prometheus (the
// request-duration histogram fastify-metrics exposes, labelled by status code), and a drain on
// SIGTERM.
'use strict';

const fastify = require('fastify')({ logger: false });

const siteUrl = process.env.SITE_URL;
if (!siteUrl) {
  throw new Error('SITE_URL is not set');
}

fastify.register(require('@fastify/cors'), { origin: siteUrl, credentials: true });
fastify.register(require('@fastify/websocket'));

// The rollout drill's image that never becomes healthy: it listens, but every answer is a 500.
if (process.env.SOS_DRILL_BROKEN === '1') {
  fastify.addHook('onRequest', async (request, reply) => reply.code(500).send({ error: 'broken build' }));
}

// http_request_duration_seconds, by status code, in fastify-metrics' default buckets.
const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const durations = new Map();
fastify.addHook('onResponse', async (request, reply) => {
  if (request.url === '/metrics') return;
  const code = String(reply.statusCode);
  const seconds = reply.elapsedTime / 1000;
  const entry = durations.get(code) || { buckets: BUCKETS.map(() => 0), count: 0, sum: 0 };
  BUCKETS.forEach((le, i) => { if (seconds <= le) entry.buckets[i] += 1; });
  entry.count += 1;
  entry.sum += seconds;
  durations.set(code, entry);
});

function metrics() {
  const name = 'http_request_duration_seconds';
  const lines = [`# HELP ${name} request duration in seconds`, `# TYPE ${name} histogram`];
  for (const [code, entry] of durations) {
    BUCKETS.forEach((le, i) => lines.push(`${name}_bucket{le="${le}",status_code="${code}"} ${entry.buckets[i]}`));
    lines.push(`${name}_bucket{le="+Inf",status_code="${code}"} ${entry.count}`);
    lines.push(`${name}_sum{status_code="${code}"} ${entry.sum}`);
    lines.push(`${name}_count{status_code="${code}"} ${entry.count}`);
  }
  return `${lines.join('\n')}\n`;
}

fastify.register(async (app) => {
  app.get('/health', async () => ({ ok: true }));
  app.get('/metrics', async (request, reply) => reply.type('text/plain; version=0.0.4').send(metrics()));
  app.get('/v1/hello', async () => ({ hello: 'world' }));
  app.get('/v1/posts', async () => ({
    items: Array.from({ length: 40 }, (_, i) => ({ id: i, title: `post ${i}` })),
  }));
  app.post('/v1/auth/login', async (request, reply) => reply.code(401).send({ error: 'invalid credentials' }));
  // Browsers do not apply CORS to WebSockets: the handshake's Origin is checked here instead.
  app.get('/v1/ws', {
    websocket: true,
    preValidation: async (request, reply) => {
      if (request.headers.origin !== siteUrl) {
        reply.code(403).send({ error: 'origin not allowed' });
      }
    },
  }, (socket) => {
    socket.on('message', (message) => socket.send(String(message) === 'ping' ? 'pong' : 'unknown'));
  });
});

const port = Number(process.env.PORT || 3001);
const host = process.env.HOST || '0.0.0.0';

fastify.listen({ port, host }).then(() => {
  process.stdout.write(`api listening on ${host}:${port}\n`);
});

// In-flight requests finish; new connections are refused while the process drains.
process.on('SIGTERM', () => {
  fastify.close().then(() => process.exit(0));
});
