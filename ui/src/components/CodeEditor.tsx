/**
 * A JavaScript editor on CodeMirror 6: syntax highlighting, bracket
 * matching, undo history; Mod-Enter runs, and Up/Down at the first/last line
 * walk the REPL history.
 */
import { useEffect, useRef } from "react";
import { closeBrackets, closeBracketsKeymap } from "@codemirror/autocomplete";
import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import { javascript } from "@codemirror/lang-javascript";
import { bracketMatching, defaultHighlightStyle, indentOnInput, syntaxHighlighting } from "@codemirror/language";
import { EditorState, Prec } from "@codemirror/state";
import { EditorView, keymap, placeholder as placeholderExt } from "@codemirror/view";

export interface CodeEditorHandle {
  setText: (text: string) => void;
  focus: () => void;
}

export function CodeEditor({
  initial = "",
  placeholder,
  onChange,
  onSubmit,
  onHistoryBack,
  onHistoryForward,
  handleRef,
  ariaLabel,
}: {
  initial?: string;
  placeholder?: string;
  onChange?: (text: string) => void;
  onSubmit: (text: string) => void;
  /** Returns the text to show, or null to let the cursor move normally. */
  onHistoryBack?: (current: string) => string | null;
  onHistoryForward?: () => string | null;
  handleRef?: React.RefObject<CodeEditorHandle | null>;
  ariaLabel: string;
}) {
  const host = useRef<HTMLDivElement>(null);
  // The editor is created once; callbacks are read through a ref so they stay current.
  const callbacks = useRef({ onChange, onSubmit, onHistoryBack, onHistoryForward });
  useEffect(() => {
    callbacks.current = { onChange, onSubmit, onHistoryBack, onHistoryForward };
  });

  useEffect(() => {
    if (!host.current) return;
    const replace = (view: EditorView, text: string) => {
      view.dispatch({
        changes: { from: 0, to: view.state.doc.length, insert: text },
        selection: { anchor: text.length },
      });
    };
    const replKeys = Prec.highest(
      keymap.of([
        {
          key: "Mod-Enter",
          preventDefault: true,
          run: (view) => {
            callbacks.current.onSubmit(view.state.doc.toString());
            return true;
          },
        },
        {
          key: "ArrowUp",
          run: (view) => {
            const { state } = view;
            const line = state.doc.lineAt(state.selection.main.head);
            if (line.number !== 1 || !state.selection.main.empty) return false;
            const text = callbacks.current.onHistoryBack?.(state.doc.toString()) ?? null;
            if (text === null) return false;
            replace(view, text);
            return true;
          },
        },
        {
          key: "ArrowDown",
          run: (view) => {
            const { state } = view;
            const line = state.doc.lineAt(state.selection.main.head);
            if (line.number !== state.doc.lines || !state.selection.main.empty) return false;
            const text = callbacks.current.onHistoryForward?.() ?? null;
            if (text === null) return false;
            replace(view, text);
            return true;
          },
        },
      ]),
    );
    const view = new EditorView({
      parent: host.current,
      state: EditorState.create({
        doc: initial,
        extensions: [
          replKeys,
          history(),
          closeBrackets(),
          bracketMatching(),
          indentOnInput(),
          javascript(),
          syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
          keymap.of([...closeBracketsKeymap, ...defaultKeymap, ...historyKeymap, indentWithTab]),
          EditorView.lineWrapping,
          EditorView.contentAttributes.of({ "aria-label": ariaLabel, "data-testid": "code-editor" }),
          placeholder ? placeholderExt(placeholder) : [],
          EditorView.updateListener.of((update) => {
            if (update.docChanged) callbacks.current.onChange?.(update.state.doc.toString());
          }),
        ],
      }),
    });
    if (handleRef) {
      handleRef.current = {
        setText: (text) => replace(view, text),
        focus: () => view.focus(),
      };
    }
    return () => {
      view.destroy();
      if (handleRef) handleRef.current = null;
    };
    // The editor lives as long as the component; `initial` only seeds it.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  return <div className="code-editor" ref={host} />;
}
