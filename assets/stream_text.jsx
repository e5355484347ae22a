import { useEffect } from "react";

// Accumulated text lives in a MODULE-LEVEL store (not useRef): it survives
// remounts (Reflex re-renders the page tree around hydration, which wipes refs).
// Server sends only (start, text) deltas:
//   start == 0                      -> reset to text
//   start <= acc.length < start+len -> append the new tail (overlap tolerated)
//   start >  acc.length             -> GAP: ignore, call onGap(acc.length) once; server resends (0, full)
// Idempotent under React StrictMode double render (every branch is guarded by acc.length).
const STORE = new Map(); // streamKey -> { s: string, gaps: number, asked: boolean }

export function StreamText({ streamKey, start, text, onGap, ...rest }) {
  const key = streamKey ?? "";
  let a = STORE.get(key);
  if (a === undefined) {
    a = { s: "", gaps: 0, asked: false };
    STORE.set(key, a);
  }
  const s = Number(start ?? 0);
  const t = text ?? "";
  let gap = false;
  if (s === 0) {
    // reset (guard: don't shrink if this is a stale re-render of an older reset)
    if (!(t.length < a.s.length && a.s.startsWith(t))) a.s = t;
    a.asked = false;
  } else if (s <= a.s.length) {
    if (s + t.length > a.s.length) a.s += t.slice(a.s.length - s);
  } else {
    gap = true;
  }
  useEffect(() => {
    if (gap && !a.asked) {
      a.asked = true;
      a.gaps += 1;
      if (onGap) onGap(a.s.length);
    }
  });
  return (
    <span data-stream-key={key} data-len={a.s.length} data-gaps={a.gaps} {...rest}>
      {a.s}
    </span>
  );
}
