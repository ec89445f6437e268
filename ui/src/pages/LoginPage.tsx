/**
 * The login screen: where a token comes from, and a field to paste it. The
 * token is checked with `GET /whoami` before the app opens.
 */
import { useState } from "react";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { normaliseSecret } from "../api/auth";
import { tokens, whoAmI } from "../api/client";
import { keys } from "../api/queries";
import { useTitle } from "../components/bits";
import { ErrorPanel } from "../components/feedback";

/** The port this page came from, which names the daemon's token file. */
function daemonPort(): string {
  if (window.location.port) return window.location.port;
  return window.location.protocol === "https:" ? "443" : "80";
}

export function LoginPage({ notice }: { notice: string | null }) {
  useTitle("Sign in");
  const [secret, setSecret] = useState("");
  const queryClient = useQueryClient();
  const verify = useMutation({
    mutationFn: async (candidate: string) => ({ candidate, who: await whoAmI(candidate) }),
    onSuccess: ({ candidate, who }) => {
      const generation = tokens.signIn(candidate);
      queryClient.setQueryData(keys.whoamiAt(generation), who);
    },
  });
  const candidate = normaliseSecret(secret);
  const tokenFile = `~/.local/share/vm-system/admin-token-${daemonPort()}`;
  return (
    <main className="login" aria-labelledby="login-title" data-testid="login-page">
      <div className="login-card">
        <div className="login-brand">
          <span className="brand-mark" aria-hidden="true">
            ›_
          </span>
          vm-system
        </div>
        <h1 id="login-title">Sign in</h1>
        <p className="page-subtitle">
          This daemon needs an API token. It stays in this tab only and is forgotten when the tab closes.
        </p>
        {notice && !verify.isError ? (
          <div className="banner banner-bad" role="alert" data-testid="login-notice">
            You were signed out: {notice}
          </div>
        ) : null}
        <form
          className="form"
          onSubmit={(event) => {
            event.preventDefault();
            if (candidate !== "") verify.mutate(candidate);
          }}
        >
          <label className="field">
            <span>API token</span>
            <input
              type="password"
              name="token"
              className="mono"
              value={secret}
              onChange={(event) => {
                setSecret(event.target.value);
                if (verify.isError) verify.reset();
              }}
              placeholder="vmsys_…"
              autoComplete="off"
              spellCheck={false}
              autoFocus
              required
            />
          </label>
          {verify.error ? <ErrorPanel error={verify.error} title="Not signed in" compact /> : null}
          <div className="form-actions">
            <button type="submit" className="button primary" disabled={verify.isPending || candidate === ""}>
              {verify.isPending ? "Checking…" : "Sign in"}
            </button>
          </div>
        </form>
        <section className="login-help" aria-labelledby="login-help-title">
          <h2 id="login-help-title">Where do I get a token?</h2>
          <ul>
            <li>
              The first time <code>vm-system serve</code> starts it makes a bootstrap <strong>admin</strong> token,
              prints it with a link that signs this browser in, and saves it, readable only by you, in
              <pre className="login-command">cat {tokenFile}</pre>
              <span className="muted small">
                (or under <code>$VM_SYSTEM_DATA_DIR</code>, <code>$XDG_DATA_HOME/vm-system</code> or{" "}
                <code>serve --data-dir</code>).
              </span>
            </li>
            <li>
              An admin makes more, with the least scope that does the job:
              <pre className="login-command">vm-system token create NAME --scope read|execute|admin</pre>
              <span className="muted small">
                <code>read</code> sees everything, <code>execute</code> also runs sessions and code, <code>admin</code>{" "}
                also edits templates and tokens.
              </span>
            </li>
          </ul>
        </section>
      </div>
    </main>
  );
}
