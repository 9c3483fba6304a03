'use client';

import { useEffect, useState } from 'react';

// Hydrates in the browser, then calls the API host the way the real site does: a credentialed
// cross-origin fetch and a WebSocket, both under the edge's CSP and CORS.
export default function ApiPanel({ apiUrl }) {
  const [hydrated, setHydrated] = useState(false);
  const [json, setJson] = useState('pending');
  const [socket, setSocket] = useState('pending');

  useEffect(() => {
    setHydrated(true);
    fetch(`${apiUrl}/v1/hello`, { credentials: 'include' })
      .then((r) => r.json())
      .then((body) => setJson(body.hello))
      .catch((e) => setJson(`failed: ${e}`));
    const ws = new WebSocket(`${apiUrl.replace(/^http/, 'ws')}/v1/ws`);
    ws.onopen = () => ws.send('ping');
    ws.onmessage = (event) => { setSocket(String(event.data)); ws.close(); };
    ws.onerror = () => setSocket('failed');
    return () => ws.close();
  }, [apiUrl]);

  return (
    <section>
      <p id="hydrated">{hydrated ? 'hydrated' : 'server'}</p>
      <p id="api-json">{json}</p>
      <p id="api-ws">{socket}</p>
    </section>
  );
}
