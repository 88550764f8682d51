import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { Router } from "./modules/router/router";
import "./styles/fonts.css";
import "./styles/global.css";
import "./styles/ide.css";
import "./styles/ide-extras.css";
import { App } from "./App";
import { AuthProvider } from "./modules/auth/AuthContext";
import { ThemeProvider } from "./modules/theme/ThemeContext";

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <ThemeProvider>
      <AuthProvider>
        <Router>
          <App />
        </Router>
      </AuthProvider>
    </ThemeProvider>
  </StrictMode>,
);
