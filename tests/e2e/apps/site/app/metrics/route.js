// The frontend's side of the monitoring contract (docs/architecture.md): Prometheus scrapes
// /metrics on each replica; the edge keeps the path from the public.
export const dynamic = 'force-dynamic';

export function GET() {
  const body = [
    '# HELP process_uptime_seconds Seconds since the process started.',
    '# TYPE process_uptime_seconds gauge',
    `process_uptime_seconds ${process.uptime()}`,
    '# HELP process_resident_memory_bytes Resident memory size in bytes.',
    '# TYPE process_resident_memory_bytes gauge',
    `process_resident_memory_bytes ${process.memoryUsage().rss}`,
    '',
  ].join('\n');
  return new Response(body, { headers: { 'Content-Type': 'text/plain; version=0.0.4' } });
}
