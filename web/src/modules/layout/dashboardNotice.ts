/** A one-time notice for the dashboard, left by a page that sent the user there (their access to a workspace was revoked). */
const KEY = "cc.dashboard-notice";

export function leaveDashboardNotice(message: string): void {
  try {
    sessionStorage.setItem(KEY, message);
  } catch {
    /* storage disabled: no notice */
  }
}

export function takeDashboardNotice(): string | null {
  try {
    const m = sessionStorage.getItem(KEY);
    if (m !== null) sessionStorage.removeItem(KEY);
    return m;
  } catch {
    return null;
  }
}
