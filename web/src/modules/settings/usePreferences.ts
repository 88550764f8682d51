/** The signed-in user's IDE preferences (stored on the server, per user), applied as they load and when saved. */
import { useCallback, useEffect, useState } from "react";
import { getPreferences, putPreferences } from "../../api/ide";
import type { Preferences } from "../../api/types";
import { useTheme } from "../theme/ThemeContext";

export const DEFAULT_PREFERENCES: Preferences = { font_size: 14, tab_size: 4, word_wrap: false, key_bindings: "default", theme: "system" };

export function usePreferences() {
  const [prefs, setPrefs] = useState<Preferences>(DEFAULT_PREFERENCES);
  const { set: setTheme } = useTheme();
  const applyTheme = useCallback(
    (p: Preferences) => {
      if (p.theme === "light" || p.theme === "dark") setTheme(p.theme);
    },
    [setTheme],
  );
  useEffect(() => {
    let cancelled = false;
    getPreferences().then(
      (p) => {
        if (cancelled) return;
        setPrefs(p);
        applyTheme(p);
      },
      () => undefined, // defaults stay: settings are a comfort, not a reason to block the IDE
    );
    return () => {
      cancelled = true;
    };
  }, [applyTheme]);
  const save = useCallback(
    async (p: Preferences) => {
      const saved = await putPreferences(p);
      setPrefs(saved);
      applyTheme(saved);
    },
    [applyTheme],
  );
  return { prefs, save };
}
