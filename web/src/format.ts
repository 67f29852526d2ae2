/** Dates and texts for display. */

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'short' });
const dateFmt = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short', year: 'numeric' });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'short' });

/** "14:03" today, "Tue" this week, "3 Mar 2026" before. */
export function shortWhen(iso: string, now = new Date()): string {
  const d = new Date(iso);
  if (sameDay(d, now)) return timeFmt.format(d);
  if (now.getTime() - d.getTime() < 6 * 86_400_000 && d < now) return dayFmt.format(d);
  return dateFmt.format(d);
}

/** Time of a message: "14:03", or with the day when it is not today. */
export function messageWhen(iso: string, now = new Date()): string {
  const d = new Date(iso);
  return sameDay(d, now) ? timeFmt.format(d) : `${shortWhen(iso, now)} ${timeFmt.format(d)}`;
}

export function fullWhen(iso: string): string {
  return fullFmt.format(new Date(iso));
}

function sameDay(a: Date, b: Date): boolean {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
}

/** One line of a message for the chat list. */
export function preview(text: string, max = 80): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

/** The 12 groups of a safety number as 3 lines of 4. */
export function safetyLines(safetyNumber: string): string[] {
  const groups = safetyNumber.trim().split(/\s+/);
  const lines: string[] = [];
  for (let i = 0; i < groups.length; i += 4) lines.push(groups.slice(i, i + 4).join(' '));
  return lines;
}
