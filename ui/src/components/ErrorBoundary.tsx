/** Catches a render failure and shows it, instead of a blank page. */
import { Component, type ErrorInfo, type ReactNode } from "react";
import { ErrorPanel } from "./feedback";

interface State {
  error: unknown;
}

export class ErrorBoundary extends Component<{ children: ReactNode; resetKey?: string }, State> {
  state: State = { error: null };

  static getDerivedStateFromError(error: unknown): State {
    return { error };
  }

  componentDidCatch(error: unknown, info: ErrorInfo) {
    console.error("vm-system UI crashed while rendering", error, info.componentStack);
  }

  componentDidUpdate(previous: { resetKey?: string }) {
    if (previous.resetKey !== this.props.resetKey && this.state.error !== null) this.setState({ error: null });
  }

  render() {
    if (this.state.error !== null) {
      return (
        <div className="page">
          <ErrorPanel
            error={this.state.error}
            title="This page failed to render"
            onRetry={() => this.setState({ error: null })}
          />
        </div>
      );
    }
    return this.props.children;
  }
}
