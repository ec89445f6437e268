/**
 * Data hooks: every read the pages make, keyed so that a write can refresh
 * exactly what it changed.
 */
import { useSyncExternalStore } from "react";
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { ApiError, api, listNodes, tokens, unwrap, type SessionStatus } from "./client";

export const keys = {
  whoami: ["whoami"] as const,
  /** By the token store's generation: each sign-in asks anew, and no secret sits in a key. */
  whoamiAt: (generation: number) => ["whoami", generation] as const,
  tokens: ["tokens"] as const,
  health: ["health"] as const,
  ready: ["ready"] as const,
  summary: ["runtime-summary"] as const,
  metrics: ["metrics-summary"] as const,
  nodes: ["nodes"] as const,
  templates: ["templates"] as const,
  template: (id: string) => ["templates", id] as const,
  catalogModules: ["catalog", "modules"] as const,
  catalogLibraries: ["catalog", "libraries"] as const,
  sessions: ["sessions"] as const,
  sessionList: (status: SessionStatus | undefined) => ["sessions", "list", status ?? "all"] as const,
  session: (id: string) => ["sessions", "one", id] as const,
  executions: (sessionId: string) => ["executions", "list", sessionId] as const,
  execution: (id: string) => ["executions", "one", id] as const,
  events: (executionId: string) => ["executions", "events", executionId] as const,
};

/** This tab's token and why it was last signed out; re-renders on every change. */
export function useAuth() {
  return useSyncExternalStore(tokens.subscribe, tokens.snapshot);
}

export function useTokens() {
  return useQuery({ queryKey: keys.tokens, queryFn: () => unwrap(api.GET("/tokens")) });
}

export function useHealth() {
  return useQuery({
    queryKey: keys.health,
    queryFn: () => unwrap(api.GET("/health")),
    refetchInterval: 15_000,
    retry: false,
  });
}

/** Readiness: whether the daemon's database answers (`GET /ready`, 503 when it does not). */
export function useReady() {
  return useQuery({
    queryKey: keys.ready,
    queryFn: () => unwrap(api.GET("/ready")),
    refetchInterval: 15_000,
    retry: false,
  });
}

export function useRuntimeSummary() {
  return useQuery({
    queryKey: keys.summary,
    queryFn: () => unwrap(api.GET("/runtime/summary")),
    refetchInterval: 10_000,
  });
}

/** How often the System page reads the metrics again while it is shown. */
export const METRICS_POLL_MS = 2_000;

/**
 * The daemon's key metrics, read every two seconds while this tab is visible.
 * A refusal (403 without the read scope, 404 from a daemon older than this
 * UI) stops the polling: asking again would get the same answer. Retry asks.
 */
export function useMetricsSummary() {
  return useQuery({
    queryKey: keys.metrics,
    queryFn: () => unwrap(api.GET("/metrics/summary")),
    refetchInterval: (query) => (isRefusal(query.state.error) ? false : METRICS_POLL_MS),
    refetchIntervalInBackground: false,
    staleTime: 0,
  });
}

/**
 * The nodes serving the database, read as often as the metrics (their
 * heartbeats and session counts move every few seconds) while this tab is
 * visible. A refusal stops the polling, as for the metrics.
 */
export function useNodes() {
  return useQuery({
    queryKey: keys.nodes,
    queryFn: listNodes,
    refetchInterval: (query) => (isRefusal(query.state.error) ? false : METRICS_POLL_MS),
    refetchIntervalInBackground: false,
    staleTime: 0,
  });
}

/** 403 and 404 do not change by asking again; anything else (a network blip, a 503) may. */
function isRefusal(error: unknown): boolean {
  return error instanceof ApiError && (error.status === 403 || error.status === 404);
}

export function useTemplates() {
  return useQuery({ queryKey: keys.templates, queryFn: () => unwrap(api.GET("/templates")) });
}

export function useTemplate(id: string) {
  return useQuery({
    queryKey: keys.template(id),
    queryFn: () => unwrap(api.GET("/templates/{id}", { params: { path: { id } } })),
  });
}

export function useCatalogModules() {
  return useQuery({
    queryKey: keys.catalogModules,
    queryFn: () => unwrap(api.GET("/catalog/modules")),
    staleTime: 60_000,
  });
}

export function useCatalogLibraries() {
  return useQuery({ queryKey: keys.catalogLibraries, queryFn: () => unwrap(api.GET("/catalog/libraries")) });
}

export function useSessions(status: SessionStatus | undefined) {
  return useQuery({
    queryKey: keys.sessionList(status),
    queryFn: () => unwrap(api.GET("/sessions", { params: { query: status ? { status } : {} } })),
    placeholderData: keepPreviousData,
  });
}

export function useSession(id: string) {
  return useQuery({
    queryKey: keys.session(id),
    queryFn: () => unwrap(api.GET("/sessions/{id}", { params: { path: { id } } })),
  });
}

/** How often a list or an execution is read again while something runs, and otherwise. */
const POLL_RUNNING_MS = 2_000;
const POLL_IDLE_MS = 10_000;

/**
 * A session's executions, newest first. This tab's runs refresh it when they
 * start and end; polling catches runs started elsewhere (the CLI, another tab).
 */
export function useExecutions(sessionId: string, limit = 50) {
  return useQuery({
    queryKey: [...keys.executions(sessionId), limit],
    queryFn: () => unwrap(api.GET("/executions", { params: { query: { session_id: sessionId, limit } } })),
    refetchInterval: (query) =>
      query.state.data?.some((execution) => execution.status === "running") ? POLL_RUNNING_MS : POLL_IDLE_MS,
  });
}

/** One execution; read again every few seconds while it runs. */
export function useExecution(id: string) {
  return useQuery({
    queryKey: keys.execution(id),
    queryFn: () => unwrap(api.GET("/executions/{id}", { params: { path: { id } } })),
    refetchInterval: (query) => (query.state.data?.status === "running" ? POLL_RUNNING_MS : false),
  });
}

/** An execution's stored events; with `running`, read again every few seconds. */
export function useEvents(executionId: string, enabled = true, running = false) {
  return useQuery({
    queryKey: keys.events(executionId),
    queryFn: () => unwrap(api.GET("/executions/{id}/events", { params: { path: { id: executionId } } })),
    enabled,
    refetchInterval: running ? POLL_RUNNING_MS : false,
  });
}
