/**
 * Who is using the UI. On start it asks the daemon `GET /whoami`, with the
 * tab's token or, without one, bare (a daemon with `--auth=off` answers 200
 * and the app opens directly); a 401 shows the login screen instead.
 */
import { createContext, useContext, useEffect, useMemo, type ReactNode } from "react";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { toApiError, tokens, whoAmI, type WhoAmI } from "../api/client";
import { keys, useAuth } from "../api/queries";
import { LoginPage } from "../pages/LoginPage";
import { ErrorPanel, Loading } from "./feedback";

export interface SignedIn {
  who: WhoAmI;
  /** The daemon runs with `--auth=off`: nobody signs in or out. */
  authOff: boolean;
  signOut: () => void;
}

const SignedInContext = createContext<SignedIn | null>(null);

/** The signed-in caller; only for components under `<AuthGate>`. */
export function useSignedIn(): SignedIn {
  const signedIn = useContext(SignedInContext);
  if (signedIn === null) throw new Error("useSignedIn is used outside <AuthGate>");
  return signedIn;
}

function Splash({ children }: { children: ReactNode }) {
  return (
    <main className="login">
      <div className="login-card">{children}</div>
    </main>
  );
}

export function AuthGate({ children }: { children: ReactNode }) {
  const { token, notice, generation } = useAuth();
  const queryClient = useQueryClient();
  const who = useQuery({
    queryKey: keys.whoamiAt(generation),
    queryFn: () => whoAmI(token),
    retry: false,
    staleTime: Infinity,
    refetchOnWindowFocus: false,
  });

  // Signed out: nothing read with the old token stays in the cache.
  useEffect(() => {
    if (token === null) queryClient.removeQueries({ predicate: (query) => query.queryKey[0] !== keys.whoami[0] });
  }, [token, queryClient]);

  const signedIn = useMemo<SignedIn | null>(
    () => (who.data ? { who: who.data, authOff: token === null, signOut: () => void tokens.signOut() } : null),
    [who.data, token],
  );

  if (signedIn) return <SignedInContext.Provider value={signedIn}>{children}</SignedInContext.Provider>;
  if (who.isPending) {
    return (
      <Splash>
        <Loading label="Connecting to the daemon…" />
      </Splash>
    );
  }
  const error = toApiError(who.error);
  if (error.status === 401) return <LoginPage notice={notice} />;
  return (
    <Splash>
      <ErrorPanel error={error} title="Cannot ask the daemon who you are" onRetry={() => void who.refetch()} />
    </Splash>
  );
}
