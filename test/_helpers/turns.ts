/** Counts turns of the event loop: an immediate that re-arms itself runs once per turn. */
export function turnCounter(): { now: () => number; stop: () => void } {
  let turns = 0;
  let on = true;
  const tick = () => {
    turns++;
    if (on) setImmediate(tick);
  };
  setImmediate(tick);
  return { now: () => turns, stop: () => (on = false) };
}
