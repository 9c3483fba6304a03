import { cookies } from 'next/headers';

// A per-user page: who is signed in comes from the session cookie. Reading cookies makes the
// page dynamic, and Next.js answers it `private, no-cache, no-store`.
export default async function Account() {
  const session = (await cookies()).get('session');
  return (
    <main>
      <h1 id="account">{session ? `Signed in as ${session.value}` : 'Signed out'}</h1>
    </main>
  );
}
