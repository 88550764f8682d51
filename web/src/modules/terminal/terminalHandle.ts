/** What the rest of the IDE may do with a mounted terminal. */
export interface TerminalHandle {
  /** Types text into the shell as if the user had typed it. */
  sendInput(text: string): void;
  focus(): void;
}
