// The code editor: CodeMirror set up for Python (Enter is a newline, Tab accepts a completion,
// 4-space indents, readable colours), Ctrl/⌘+Enter to step, and the draft kept across reloads.
import { acceptCompletion, closeCompletion } from "@codemirror/autocomplete";
import { indentWithTab, insertNewlineAndIndent } from "@codemirror/commands";
import { python } from "@codemirror/lang-python";
import { HighlightStyle, indentUnit, syntaxHighlighting } from "@codemirror/language";
import { EditorState, Prec } from "@codemirror/state";
import { keymap } from "@codemirror/view";
import { tags } from "@lezer/highlight";
import { basicSetup, EditorView } from "codemirror";

/** localStorage key of the editor's content, so a reload (or a crash of the tab) keeps the draft. */
const DRAFT_KEY = "coding-env:draft";

const SAMPLE_CODE = `# Write Python and press Step (Ctrl/⌘+Enter).
x = 5 + 3
print(f"Result: {x}")
`;

/**
 * CodeMirror's default colours with the ones under 4.5:1 on the (active-line) background darkened:
 * comments, escapes/regexps and invalid tokens (axe's colour-contrast rule found them).
 */
const readableHighlighting = HighlightStyle.define([
  { tag: tags.keyword, color: "#708" },
  { tag: [tags.atom, tags.bool, tags.url, tags.contentSeparator, tags.labelName], color: "#219" },
  { tag: [tags.literal, tags.inserted], color: "#164" },
  { tag: [tags.string, tags.deleted], color: "#a11" },
  { tag: [tags.regexp, tags.escape, tags.special(tags.string)], color: "#a33a00" },
  { tag: tags.definition(tags.variableName), color: "#00c" },
  { tag: tags.local(tags.variableName), color: "#30a" },
  { tag: [tags.typeName, tags.namespace], color: "#085" },
  { tag: tags.className, color: "#167" },
  { tag: [tags.special(tags.variableName), tags.macroName], color: "#256" },
  { tag: tags.definition(tags.propertyName), color: "#00c" },
  { tag: tags.comment, color: "#6b3d00", fontStyle: "italic" },
  { tag: tags.invalid, color: "#c00" },
]);

function savedDraft(): string | undefined {
  try {
    return localStorage.getItem(DRAFT_KEY) ?? undefined;
  } catch {
    return undefined;
  }
}

/** The page's editor. */
export class CodeEditor {
  readonly view: EditorView;
  private draftTimer: ReturnType<typeof setTimeout> | undefined;

  /** Puts the editor in `parent`; `onRun` is Ctrl/⌘+Enter. */
  constructor(parent: HTMLElement, onRun: () => void) {
    const runShortcut = Prec.highest(
      keymap.of([
        {
          key: "Mod-Enter",
          run: () => {
            onRun();
            return true;
          },
        },
        // Python is written line by line: Enter always starts a new line (basicSetup's completion
        // keymap would accept a suggestion instead); a suggestion is accepted with Tab.
        {
          key: "Enter",
          run: (view) => {
            closeCompletion(view);
            return insertNewlineAndIndent(view);
          },
        },
        { key: "Tab", run: acceptCompletion },
      ]),
    );
    this.view = new EditorView({
      doc: savedDraft() ?? SAMPLE_CODE,
      parent,
      extensions: [
        // First: at the same (highest) precedence as the completion keymap inside basicSetup, the
        // earlier extension wins, and Enter must insert a newline even with a suggestion open.
        runShortcut,
        basicSetup,
        python(),
        syntaxHighlighting(readableHighlighting),
        // Wrapped lines: no sideways scrolling on a phone, and nothing hides past the right edge.
        EditorView.lineWrapping,
        keymap.of([indentWithTab]),
        // PEP 8: four spaces per level (CodeMirror's default is two).
        indentUnit.of("    "),
        EditorState.tabSize.of(4),
        EditorView.updateListener.of((update) => {
          if (update.docChanged) this.saveDraftSoon();
        }),
        EditorView.contentAttributes.of({
          "aria-labelledby": "editor-label",
          "aria-multiline": "true",
          // Explicit, so checkers that do not count contenteditable see the scroller's focusable content.
          tabindex: "0",
        }),
      ],
    });
    letTabLeaveAfterEscape(parent);
  }

  /** The code in the editor. */
  code(): string {
    return this.view.state.doc.toString();
  }

  setCode(code: string): void {
    this.view.dispatch({ changes: { from: 0, to: this.view.state.doc.length, insert: code } });
  }

  focus(): void {
    this.view.focus();
  }

  /** Closes the suggestion popup (it would stay open over the output and take the next Enter). */
  closeCompletion(): void {
    closeCompletion(this.view);
  }

  /** Saves the draft now (typing saves it shortly after it stops). */
  saveDraft(): void {
    if (this.draftTimer !== undefined) clearTimeout(this.draftTimer);
    this.draftTimer = undefined;
    try {
      localStorage.setItem(DRAFT_KEY, this.code());
    } catch {
      // Storage full or disabled: the draft is a convenience.
    }
  }

  /** Saves the draft shortly after typing stops (and at once when the page is hidden or closed). */
  private saveDraftSoon(): void {
    if (this.draftTimer !== undefined) clearTimeout(this.draftTimer);
    this.draftTimer = setTimeout(() => this.saveDraft(), 300);
  }
}

/**
 * Tab indents (indentWithTab), so keyboard users leave the editor with Esc then Tab (or Shift+Tab)
 * within two seconds. Done in the capture phase above CodeMirror, so it holds whatever Escape
 * binding (autocomplete, search) handled the key first: the Tab never reaches the editor and the
 * browser moves focus as usual.
 */
function letTabLeaveAfterEscape(parent: HTMLElement): void {
  let escapedAt = 0;
  parent.addEventListener(
    "keydown",
    (event) => {
      if (event.key === "Escape") {
        escapedAt = Date.now();
      } else if (event.key === "Tab" && Date.now() - escapedAt < 2000) {
        event.stopPropagation();
        escapedAt = 0;
      } else if (event.key !== "Shift") {
        escapedAt = 0;
      }
    },
    { capture: true },
  );
}
