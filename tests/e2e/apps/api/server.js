// A small API with the contract the platform's edge and frontend rely on: CORS for the site's
// origin (SITE_URL, as the program sets it), a JSON route, a WebSocket route, a login route the
// edge rate-limits, /health for the container's health check, and a drain on SIGTERM.
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

fastify.register(async (app) => {
  app.get('/health', async () => ({ ok: true }));
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
