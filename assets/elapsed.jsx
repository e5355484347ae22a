import { useEffect, useState } from "react";

// Seconds since a turn started, ticking in the browser: the server sends the turn and how long it had been
// running when the row was sent (`base`), never a tick per second (each tick would resend every agent row).
export function Elapsed({ turn, base, ...rest }) {
  const [start, setStart] = useState(() => Date.now() - (base ?? 0) * 1000);
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    setStart(Date.now() - (base ?? 0) * 1000);
  }, [turn]); // a new turn restarts the clock; a resent row of the same turn does not
  useEffect(() => {
    const id = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(id);
  }, []);
  return <span {...rest}>{Math.max(0, Math.floor((now - start) / 1000))}s</span>;
}
