// Static at build time, regenerated at most once a minute (ISR): Next.js answers it with
// s-maxage and stale-while-revalidate.
export const revalidate = 60;

export default function Isr() {
  return (
    <main>
      <h1 id="isr">Generated at {new Date().toISOString()}</h1>
    </main>
  );
}
