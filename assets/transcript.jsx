import { useEffect } from "react";
import { catchUp, STORE as STREAMED } from "./stream_text.jsx";

// The room's transcript lives on the client (a MODULE-LEVEL store, like StreamText's), so the server sends
// only the rows that changed, never the whole list again:
//   { room, gen, reset: true, rows }   -> replace everything (page load, reconnect)
//   { room, gen, base, rows }          -> upsert rows by id, if this page is at `base`; else it is a GAP
//   { room, gen, resend: true, rows }  -> the rows changed since the gen this page asked from (after a gap)
// On a gap the page keeps showing what it has and asks once (onGap) for the rows changed since its last
// good gen. A finished turn this page watched stream arrives without the text the page already has:
// `stream` names the StreamText store holding its first `skip` characters; `content` is only the rest.
// `live` is LiveState's latest frame per stream: when React merged a stream's last frame with the delta that
// finishes it, StreamText never rendered that frame, so the store catches up from it here.
// React merges deltas that arrive together into one render, so a delta can go unseen: that is a gap too.
// Idempotent under re-renders: a delta is applied once, by its gen.
const T = { room: null, gen: -1, rows: new Map(), list: [], need: null, asked: false };

function missing(since) {
  if (T.need === null || since < T.need) T.need = since;
}

function apply(rows, base, live) {
  for (const row of rows ?? []) {
    if (!row.stream) {
      T.rows.set(row.id, row);
      continue;
    }
    if (live && live[row.stream]) catchUp(row.stream, live[row.stream]);
    const streamed = STREAMED.get(row.stream);
    if (!streamed || streamed.s.length < row.skip) {
      missing(base); // this page missed some of the streamed text: ask for the message whole
      continue;
    }
    T.rows.set(row.id, { ...row, content: streamed.s.slice(0, row.skip) + row.content, stream: "", skip: 0 });
  }
  T.list = Array.from(T.rows.values());
}

export function transcript(tx, live) {
  if (!tx || tx.gen === undefined) return T.list;
  if (tx.reset) {
    if (T.room !== tx.room || T.gen !== tx.gen) {
      T.room = tx.room;
      T.rows = new Map();
      T.need = null;
      T.asked = false;
      apply(tx.rows, 0, live);
      T.gen = tx.gen;
    }
  } else if (T.room !== tx.room) {
    missing(0); // this page has nothing of this room yet (its reset went by unseen): ask for all of it
  } else if (T.gen >= tx.gen) {
    // applied already (a re-render)
  } else if (tx.resend || T.gen === tx.base) {
    if (tx.resend) {
      T.need = null;
      T.asked = false;
    }
    apply(tx.rows, T.gen, live);
    T.gen = tx.gen;
  } else {
    missing(T.gen); // a delta went by unseen
  }
  return T.list;
}

// Renders nothing visible: asks the server (once per gap) for the rows this page could not apply.
export function TranscriptSync({ tx, live, onGap, ...rest }) {
  transcript(tx, live);
  useEffect(() => {
    if (T.need !== null && !T.asked) {
      T.asked = true;
      if (onGap) onGap(T.need);
    }
  });
  return <span data-transcript-gen={T.gen} data-rows={T.list.length} hidden {...rest} />;
}
