// The frontend container's health check (components/frontend.py) calls this route.
export const dynamic = 'force-dynamic';

export function GET() {
  return Response.json({ ok: true });
}
