import { useEffect } from "react";

// Accumulated text lives in a MODULE-LEVEL store (not useRef): it survives
// remounts (Reflex re-renders the page tree around hydration, which wipes refs),
// and the transcript (transcript.jsx) takes a finished turn's text from it.
// Server sends only (start, text) deltas, as `delta` = [start, text]:
//   start == 0                      -> reset to text
//   start <= acc.length < start+len -> append the new tail (overlap tolerated)
//   start >  acc.length             -> GAP: ignore, call onGap(key, acc.length) once; the server sends the
//                                      rest from acc.length
// Idempotent under React StrictMode double render (every branch is guarded by acc.length).
export const STORE = new Map(); // streamKey -> { s: string, gaps: number, asked: boolean }

export function stored(key) {
  let a = STORE.get(key);
  if (a === undefined) {
    a = { s: "", gaps: 0, asked: false };
    STORE.set(key, a);
  }
  return a;
}

// Apply one delta to the stream's stored text; true when it cannot be applied (a gap).
export function catchUp(key, delta) {
  const a = stored(key);
  const [start, text] = delta ?? [0, ""];
  const s = Number(start ?? 0);
  const t = text ?? "";
  if (s === 0) {
    // reset (guard: don't shrink if this is a stale re-render of an older reset)
    if (!(t.length < a.s.length && a.s.startsWith(t))) a.s = t;
    a.asked = false;
  } else if (s <= a.s.length) {
    if (s + t.length > a.s.length) {
      a.s += t.slice(a.s.length - s);
      a.asked = false;
    }
  } else {
    return true;
  }
  return false;
}

export function StreamText({ streamKey, delta, onGap, ...rest }) {
  const key = streamKey ?? "";
  const a = stored(key);
  const gap = catchUp(key, delta);
  useEffect(() => {
    if (gap && !a.asked) {
      a.asked = true;
      a.gaps += 1;
      if (onGap) onGap(key, a.s.length);
    }
  });
  return (
    <span data-stream-key={key} data-len={a.s.length} data-gaps={a.gaps} {...rest}>
      {a.s}
    </span>
  );
}
