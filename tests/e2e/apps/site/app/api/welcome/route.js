// A response that starts a session, from an application that got its caching header wrong
// (public, five minutes): the edge must still never keep it, or the next visitor would get
// this visitor's session.
export const dynamic = 'force-dynamic';

export function GET() {
  const session = crypto.randomUUID();
  return new Response(JSON.stringify({ session }), {
    headers: {
      'content-type': 'application/json',
      'cache-control': 'public, max-age=300',
      'set-cookie': `session=${session}; Path=/; HttpOnly; Secure; SameSite=Lax`,
    },
  });
}
