import { Link, useLocation } from "react-router";
import { EmptyState } from "../components/feedback";

export function NotFoundPage() {
  const location = useLocation();
  return (
    <div className="page">
      <EmptyState
        title="No such page"
        action={
          <Link className="button primary" to="/sessions">
            Go to sessions
          </Link>
        }
      >
        Nothing lives at <code>{location.pathname}</code> in the UI. The REST API is under <code>/api/v1</code> and its
        documentation at <a href="/docs/">/docs</a>.
      </EmptyState>
    </div>
  );
}
