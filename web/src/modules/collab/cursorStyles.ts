/** CSS for y-monaco's remote selections (`yRemoteSelection-<client>`) and cursor heads with the person's name in their colour. */

export interface CursorUser {
  name: string;
  color: string;
}

const HEX = /^#[0-9a-fA-F]{6}$/;

/** A CSS string literal (names are user input: quotes, backslashes and newlines are escaped). */
export function cssString(s: string): string {
  return `"${s.replace(/[\\"]/g, (c) => `\\${c}`).replace(/[\n\r\f]/g, " ").slice(0, 40)}"`;
}

export function cursorCss(states: Iterable<[number, { user?: Partial<CursorUser> } | undefined]>, self: number): string {
  const rules: string[] = [];
  for (const [client, state] of states) {
    if (client === self || !Number.isSafeInteger(client)) continue;
    const name = typeof state?.user?.name === "string" ? state.user.name : "someone";
    const color = typeof state?.user?.color === "string" && HEX.test(state.user.color) ? state.user.color : "#888888";
    rules.push(
      `.yRemoteSelection-${client}{background-color:${color}40}`,
      `.yRemoteSelectionHead-${client}{position:absolute;border-left:2px solid ${color};height:100%;box-sizing:border-box}`,
      `.yRemoteSelectionHead-${client}::after{content:${cssString(name)};position:absolute;top:-1.3em;left:-2px;padding:0 4px;` +
        `font-size:11px;line-height:1.3em;white-space:nowrap;color:#fff;background:${color};border-radius:3px 3px 3px 0;pointer-events:none;z-index:10}`,
    );
  }
  return rules.join("\n");
}
