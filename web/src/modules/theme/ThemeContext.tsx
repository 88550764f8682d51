/** Shares the current theme with the components that must follow it (Monaco, xterm). */
import { createContext, useCallback, useContext, useMemo, useState, type ReactNode } from "react";
import { applyTheme, loadTheme, type Theme } from "./theme";

interface ThemeValue {
  theme: Theme;
  toggle(): void;
  set(theme: Theme): void;
}

const ThemeContext = createContext<ThemeValue>({ theme: "dark", toggle: () => {}, set: () => {} });

export function ThemeProvider({ children }: { children: ReactNode }) {
  const [theme, setTheme] = useState<Theme>(() => {
    const t = loadTheme();
    applyTheme(t);
    return t;
  });
  const toggle = useCallback(() => {
    setTheme((t) => {
      const next: Theme = t === "dark" ? "light" : "dark";
      applyTheme(next);
      return next;
    });
  }, []);
  const set = useCallback((next: Theme) => {
    applyTheme(next);
    setTheme(next);
  }, []);
  const value = useMemo(() => ({ theme, toggle, set }), [theme, toggle, set]);
  return <ThemeContext.Provider value={value}>{children}</ThemeContext.Provider>;
}

export function useTheme(): ThemeValue {
  return useContext(ThemeContext);
}
