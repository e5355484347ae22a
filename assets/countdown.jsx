import { useEffect, useState } from "react";

// Counts down to an ISO deadline on the client: the server sends the deadline once, not a tick per second.
export function Countdown({ deadline, ...rest }) {
  const end = Date.parse(deadline ?? "");
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const id = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(id);
  }, []);
  if (Number.isNaN(end)) return null;
  const left = Math.max(0, Math.round((end - now) / 1000));
  const m = Math.floor(left / 60);
  const s = String(left % 60).padStart(2, "0");
  return <span {...rest}>{left > 0 ? `${m}:${s} left` : "time is up"}</span>;
}
