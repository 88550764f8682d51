/** Size arithmetic of the resizable split panes: clamping and persistence. */

export function clampSize(size: number, min: number, max: number, total: number): number {
  const upper = Math.max(min, Math.min(max, total - min));
  return Math.round(Math.max(min, Math.min(upper, size)));
}

export function loadSize(key: string, fallback: number): number {
  try {
    const v = Number(localStorage.getItem(`cc.split.${key}`));
    return Number.isFinite(v) && v > 0 ? v : fallback;
  } catch {
    return fallback;
  }
}

export function saveSize(key: string, size: number): void {
  try {
    localStorage.setItem(`cc.split.${key}`, String(Math.round(size)));
  } catch {
    /* storage disabled */
  }
}
