import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { QueryCache, QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { BrowserRouter } from "react-router";
import { App } from "./App";
import { AuthGate } from "./components/AuthGate";
import { ErrorBoundary } from "./components/ErrorBoundary";
import { ApiError, tokens } from "./api/client";
import { keys } from "./api/queries";
import "./styles.css";

const queryClient: QueryClient = new QueryClient({
  queryCache: new QueryCache({
    // Any request that got no answer re-checks health, so the sidebar says "unreachable" at once.
    onError: (error, query) => {
      if (error instanceof ApiError && error.code === "NETWORK_ERROR" && query.queryKey[0] !== keys.health[0]) {
        void queryClient.invalidateQueries({ queryKey: keys.health });
      }
    },
  }),
  defaultOptions: {
    queries: {
      staleTime: 2_000,
      refetchOnWindowFocus: true,
      // A 4xx will not get better by asking again; a network blip may.
      retry: (failures, error) =>
        !(error instanceof ApiError && error.status >= 400 && error.status < 500) && failures < 2,
    },
  },
});

// A sign-in link (`/#token=…`, printed by `vm-system serve`) becomes this tab's
// token before anything renders, and leaves the address bar and the history.
tokens.adoptFragment(window.location, window.history);

const root = document.getElementById("root");
if (!root) throw new Error("index.html has no #root element");

createRoot(root).render(
  <StrictMode>
    <ErrorBoundary>
      <QueryClientProvider client={queryClient}>
        <BrowserRouter>
          <AuthGate>
            <App />
          </AuthGate>
        </BrowserRouter>
      </QueryClientProvider>
    </ErrorBoundary>
  </StrictMode>,
);
