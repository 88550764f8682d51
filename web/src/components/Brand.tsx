import { Link } from "../modules/router/router";
import { CodeIcon } from "./Icons";

export function Brand({ compact }: { compact?: boolean }) {
  return (
    <Link to="/" className="brand" aria-label="Cool Coding Platform, dashboard" style={{ textDecoration: "none" }}>
      <span className="brand-mark">
        <CodeIcon />
      </span>
      {!compact && <span>Cool Coding</span>}
    </Link>
  );
}
