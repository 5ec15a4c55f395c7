// One live status line on a terminal: elapsed time, done/total and the current item, redrawn in place (at most
// ten times a second) and cleared before any other line is written. Off in pipes and CI: there the commands
// write plain lines, and machines read events through --log-format json.

export interface LiveState {
  /** What is being done: `[cp311-linux_x86_64] building`, `pushing`. */
  label: string;
  done: number;
  total: number;
  /** The current item (a package, a layer), or "". */
  item: string;
}

const elapsed = (ms: number): string => {
  const s = Math.floor(ms / 1000);
  return s < 60 ? `${(ms / 1000).toFixed(1)}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
};

export class LiveLine {
  private state: LiveState | null = null;
  private shown = false;
  private lastDraw = 0;
  private timer: NodeJS.Timeout | null = null;
  private readonly started: number;

  constructor(
    private readonly out: NodeJS.WritableStream & { columns?: number },
    readonly enabled: boolean,
    private readonly now: () => number = Date.now,
  ) {
    this.started = now();
  }

  /** The line as it is drawn (without the control characters). */
  render(s: LiveState = this.state!): string {
    const text = `${s.label} ${s.done}/${s.total} ${elapsed(this.now() - this.started)}${s.item ? ` ${s.item}` : ''}`;
    // A pseudo-terminal without a window size reports 0 columns.
    const width = (this.out.columns || 80) - 1;
    return text.length > width ? `${text.slice(0, Math.max(0, width - 1))}…` : text;
  }

  update(state: LiveState): void {
    this.state = state;
    if (!this.enabled) return;
    const wait = 100 - (this.now() - this.lastDraw);
    if (wait <= 0) this.draw();
    else this.timer ??= setTimeout(() => this.draw(), wait);
  }

  /** A lasting line: the live line is cleared first and drawn again after it. */
  log(text: string): void {
    if (this.enabled && this.shown) this.out.write('\r\x1b[2K');
    this.out.write(`${text}\n`);
    this.shown = false;
    if (this.enabled && this.state) this.draw();
  }

  finish(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.enabled && this.shown) this.out.write('\r\x1b[2K');
    this.shown = false;
  }

  private draw(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (!this.state) return;
    this.lastDraw = this.now();
    this.out.write(`\r\x1b[2K${this.render()}`);
    this.shown = true;
  }
}
