// Appended to the README's React snippet (which defines `Sentry`, `vwo` and imports
// `VWOProvider`): the tracked client given to VWO's provider, inside Sentry's ErrorBoundary; the
// component evaluating search-v2 throws when it is on, and the boundary reports the error.
import { useGetFlag } from 'vwo-fme-react-sdk';
import { createRoot } from 'react-dom/client';

function Search() {
  const { flag, isReady } = useGetFlag('search-v2');
  if (!isReady()) return <p>loading</p>;
  window.results = { 'search-v2': flag.isEnabled() };
  if (flag.isEnabled()) throw new Error(q.get('marker'));
  return <p id="search">the old search</p>;
}

createRoot(document.getElementById('root')).render(
  <Sentry.ErrorBoundary fallback={<p id="fallback">something went wrong</p>}>
    <VWOProvider client={vwo} userContext={{ id: 'user-1' }}>
      <Search />
    </VWOProvider>
  </Sentry.ErrorBoundary>,
);
