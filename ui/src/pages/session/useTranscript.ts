/**
 * The console's calls: takes the session's executions in as the list query
 * brings them, reads each ended one's events, follows a running one live,
 * and runs and cancels code. Its streams stop when the console is left and
 * resume from the last event seen when it comes back.
 */
import { useCallback, useEffect, useRef, useSyncExternalStore } from "react";
import { useQueryClient } from "@tanstack/react-query";
import { api, executionIdOf, isStoreOutage, toApiError, unwrap, type Execution } from "../../api/client";
import { followExecution } from "../../api/live";
import { keys, useExecutions } from "../../api/queries";
import {
  accepted,
  addPending,
  appendEvent,
  busyEntry,
  cancelFailed,
  cancelling,
  cleared,
  ended,
  lastSeq,
  loaded,
  mergeExecutions,
  newEntryKey,
  refused,
  retried,
  streamFailed,
  transcriptStore,
  type Transcript,
  type TranscriptEntry,
} from "./transcript";

/** Executions whose events are being read, over every console of this tab: one read each. */
const reading = new Set<string>();

/** Whether the session has a run under way in this tab's console. */
export function useConsoleBusy(sessionId: string): boolean {
  return useSyncExternalStore(transcriptStore.subscribe, () => busyEntry(transcriptStore.get(sessionId)) !== undefined);
}

export function useTranscript(sessionId: string) {
  const queryClient = useQueryClient();
  const executions = useExecutions(sessionId);
  const transcript = useSyncExternalStore(transcriptStore.subscribe, () => transcriptStore.get(sessionId));
  const followers = useRef(new Map<string, AbortController>());

  const change = useCallback(
    (update: (transcript: Transcript) => Transcript) => transcriptStore.update(sessionId, update),
    [sessionId],
  );

  /** What an execution starting or ending changes elsewhere: the history, the session's status. */
  const refresh = useCallback(() => {
    void queryClient.invalidateQueries({ queryKey: keys.executions(sessionId) });
    void queryClient.invalidateQueries({ queryKey: keys.session(sessionId) });
    void queryClient.invalidateQueries({ queryKey: keys.sessions });
  }, [queryClient, sessionId]);

  const follow = useCallback(
    (executionId: string, afterSeq: number) => {
      const controller = new AbortController();
      followers.current.set(executionId, controller);
      followExecution(executionId, {
        afterSeq,
        signal: controller.signal,
        onEvent: (event) => change((t) => appendEvent(t, executionId, event)),
      })
        .then(
          (execution) => {
            change((t) => ended(t, execution));
            queryClient.setQueryData(keys.execution(executionId), execution);
            void queryClient.invalidateQueries({ queryKey: keys.events(executionId) });
            refresh();
          },
          (error: unknown) => {
            if (!controller.signal.aborted) change((t) => streamFailed(t, executionId, toApiError(error)));
          },
        )
        .finally(() => {
          if (followers.current.get(executionId) === controller) followers.current.delete(executionId);
        });
    },
    [change, queryClient, refresh],
  );

  const read = useCallback(
    (executionId: string, withExecution: boolean) => {
      reading.add(executionId);
      const path = { params: { path: { id: executionId } } };
      Promise.all([
        unwrap(api.GET("/executions/{id}/events", path)),
        withExecution ? unwrap(api.GET("/executions/{id}", path)) : Promise.resolve(undefined),
      ])
        .then(
          ([events, execution]) => change((t) => loaded(t, executionId, events, execution)),
          (error: unknown) => change((t) => streamFailed(t, executionId, toApiError(error))),
        )
        .finally(() => reading.delete(executionId));
    },
    [change],
  );

  // The session's executions, as the list brings them (on open, after each run, and while polling).
  useEffect(() => {
    if (executions.data) change((t) => mergeExecutions(t, executions.data));
  }, [executions.data, change]);

  // Each entry that needs its events gets them: live while it runs, stored once it has ended.
  useEffect(() => {
    for (const entry of transcript.entries) {
      const id = entry.executionId;
      if (id === null) continue;
      if (entry.state === "running" && !entry.error && !followers.current.has(id)) follow(id, lastSeq(entry));
      if (entry.state === "loading" && !reading.has(id)) read(id, entry.execution === undefined);
    }
  }, [transcript.entries, follow, read]);

  // Leaving the console closes its streams; coming back resumes them from the last event.
  useEffect(() => {
    const active = followers.current;
    return () => {
      for (const controller of active.values()) controller.abort();
      active.clear();
    };
  }, []);

  const run = useCallback(
    async (kind: TranscriptEntry["kind"], input: string, request: () => Promise<Execution>) => {
      const key = newEntryKey();
      change((t) => addPending(t, { key, kind, input, at: new Date().toISOString() }));
      try {
        const execution = await request();
        change((t) => accepted(t, key, execution));
      } catch (caught) {
        const error = toApiError(caught);
        // A store outage names an execution that is not stored yet: nothing to read back.
        const executionId = isStoreOutage(error) ? null : executionIdOf(error);
        change((t) => refused(t, key, error, executionId));
      } finally {
        refresh();
      }
    },
    [change, refresh],
  );

  const cancel = useCallback(
    async (executionId: string) => {
      change((t) => cancelling(t, executionId));
      try {
        const execution = await unwrap(api.POST("/executions/{id}/cancel", { params: { path: { id: executionId } } }));
        change((t) => ended(t, execution, followers.current.has(executionId)));
      } catch (caught) {
        const error = toApiError(caught);
        // It ended on its own meanwhile: its stream says how.
        change((t) => cancelFailed(t, executionId, error.code === "EXECUTION_NOT_RUNNING" ? undefined : error));
      } finally {
        refresh();
      }
    },
    [change, refresh],
  );

  return {
    entries: transcript.entries,
    /** The run under way, if any: at most one per session. */
    busy: busyEntry(transcript),
    /** The session's executions have not been listed yet. */
    opening: executions.isPending,
    openError: executions.error,
    run,
    cancel,
    retry: (executionId: string) => change((t) => retried(t, executionId)),
    clear: () => change((t) => cleared(t, executions.data ?? [])),
  };
}
