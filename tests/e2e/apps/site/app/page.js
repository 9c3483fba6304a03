import Image from 'next/image';
import ApiPanel from './api-panel';

// Rendered on every request: the frontend reads API_URL from the environment the program gives
// it, so one build serves every stack (NEXT_PUBLIC_* would be frozen into the bundle).
export const dynamic = 'force-dynamic';

export default function Home() {
  return (
    <main>
      <h1 id="ssr">Rendered at {new Date().toISOString()}</h1>
      <Image id="logo" src="/logo.png" alt="Stories of Software" width={64} height={64} priority />
      <ApiPanel apiUrl={process.env.API_URL} />
    </main>
  );
}
